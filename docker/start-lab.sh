#!/bin/bash
# Entry point of the course image: make sure the data sets and the servers are there, then
# start JupyterLab on the course. In docker compose the servers are the compose services
# (DBCOURSE_*_URL point at them); elsewhere (JupyterHub, plain `docker run`) they start natively.
set -euo pipefail
cd "${COURSE_HOME:-/home/jovyan/course}"
dbcourse data generate shop --scale small >/dev/null
dbcourse data generate flights >/dev/null
dbcourse services up
exec jupyter lab --ip=0.0.0.0 --port=8888 --no-browser \
  --ServerApp.root_dir="$PWD" --IdentityProvider.token="${JUPYTER_TOKEN:-dbcourse}" \
  notebooks/00_start_here.ipynb
