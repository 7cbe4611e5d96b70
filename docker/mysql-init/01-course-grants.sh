#!/bin/bash
# Runs once, when the MySQL container initializes its data folder. The official image grants
# MYSQL_USER rights on MYSQL_DATABASE only; each notebook creates a database of its own (its
# namespace) and chapter 08 creates a read-only user, so the course user needs more.
set -euo pipefail
mysql -uroot -p"${MYSQL_ROOT_PASSWORD}" <<SQL
GRANT ALL PRIVILEGES ON *.* TO '${MYSQL_USER}'@'%' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
