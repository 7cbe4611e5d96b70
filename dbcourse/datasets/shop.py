"""The course's own data set: an online shop with content, generated from a fixed seed.

Deterministic by construction: one ``random.Random(SEED)`` stream per table, integer arithmetic
for money and time (no floating-point transcendental functions, whose last bit may differ from one
C library to another), fixed formatting. The same files come out, byte for byte, on every
machine; ``datasets/checksums.json`` records them and a test checks it.

Realistic shape, on purpose:

* skewed popularity: a few products sell most, a few customers buy a lot, 30% never order;
* dates over five and a half years, growing over time, with a November-December peak;
* missing values where real data has them (birth year, city, review text, product attributes);
* data-quality traps for exercises (see ``datasets/README.md``): e-mails with stray spaces and
  capitals, lower-case country codes, names with apostrophes and accents, emoji in reviews,
  orders without items, cancelled and refunded orders, prices that changed since purchase,
  anonymous events.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
from bisect import bisect
from itertools import accumulate
from pathlib import Path
from typing import Callable, Iterator

SEED = 20240501

SCALES: dict[str, dict[str, int]] = {
    "small": dict(users=2_000, products=300, orders=6_000, reviews=2_500, posts=300, comments=1_500,
                  sessions=4_000),
    "large": dict(users=100_000, products=10_000, orders=400_000, reviews=150_000, posts=10_000,
                  comments=100_000, sessions=200_000),
}

START = dt.datetime(2021, 1, 1)
END = dt.datetime(2026, 6, 30, 23, 59, 59)
SPAN = int((END - START).total_seconds())
TODAY = END

FIRST_NAMES = [
    "Ada", "Alan", "Grace", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances", "Edgar", "Katherine",
    "Tim", "Radia", "Guido", "Hedy", "John", "Shafi", "Donald", "Sophie", "Bjarne", "Anita", "Niklaus",
    "Karen", "Leslie", "Ivan", "Jean", "Yukihiro", "Rasmus", "Ana", "José", "Zoë", "Søren", "Chloé", "Mateo",
    "Aisha", "Wei", "Priya", "Olga", "Kwame", "Fatima", "Lucía", "Noah", "Emma", "Liam", "Mia", "Hiro",
    "Ingrid", "Rafael", "Amara", "Luca", "Elif", "Sven", "Nadia", "Omar", "Camille", "Tomás", "Yara", "Kenji",
    "Maëlle", "Björn",
]
LAST_NAMES = [
    "Lovelace", "Turing", "Hopper", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson", "Allen", "Codd",
    "Johnson", "Berners-Lee", "Perlman", "van Rossum", "Lamarr", "McCarthy", "Goldwasser", "Knuth", "Wilson",
    "Stroustrup", "Borg", "Wirth", "Spärck Jones", "Lamport", "Sutherland", "Sammet", "Matsumoto", "Lerdorf",
    "O'Brien", "O'Neil", "García", "Müller", "Dubois", "Rossi", "Kowalski", "Nguyen", "Okafor", "Sato",
    "Silva", "Andersson", "Novák", "Ivanova", "Haddad", "Mensah", "Patel", "Kim", "López", "Schmidt",
    "Fernández", "Jensen", "Yılmaz", "D'Angelo", "Smith", "Brown", "Chen", "Singh", "Cohen", "Murphy",
    "Nakamura", "Eriksson",
]
ASCII = str.maketrans({"é": "e", "ë": "e", "ø": "o", "ö": "o", "ü": "u", "ä": "a", "á": "a", "í": "i",
                       "ó": "o", "ú": "u", "ç": "c", "ñ": "n", "å": "a", "ı": "i", "è": "e", "'": "", " ": ""})
DOMAINS = ["example.com", "mail.example.org", "inbox.example.net", "post.example.com", "example.io"]

COUNTRIES = [  # (code, weight, cities)
    ("US", 30, ["New York", "Chicago", "Austin", "Seattle", "Boston"]),
    ("GB", 10, ["London", "Manchester", "Edinburgh", "Bristol"]),
    ("DE", 10, ["Berlin", "München", "Hamburg", "Köln"]),
    ("FR", 8, ["Paris", "Lyon", "Marseille", "Toulouse"]),
    ("ES", 5, ["Madrid", "Barcelona", "Sevilla"]),
    ("IT", 5, ["Roma", "Milano", "Napoli"]),
    ("NL", 4, ["Amsterdam", "Rotterdam", "Utrecht"]),
    ("SE", 3, ["Stockholm", "Göteborg"]),
    ("PL", 3, ["Warszawa", "Kraków", "Gdańsk"]),
    ("BR", 5, ["São Paulo", "Rio de Janeiro", "Recife"]),
    ("IN", 6, ["Bengaluru", "Mumbai", "Pune"]),
    ("JP", 4, ["Tokyo", "Osaka", "Kyoto"]),
    ("CA", 5, ["Toronto", "Montréal", "Vancouver"]),
    ("AU", 3, ["Sydney", "Melbourne"]),
    ("MX", 4, ["Ciudad de México", "Guadalajara"]),
]

CATEGORIES = {  # top level -> (sub categories, price range in cents, nouns, attribute maker name)
    "Books": (["Fiction", "Programming", "Databases", "Cooking"], (800, 6500),
              ["Handbook", "Guide", "Novel", "Cookbook", "Reference"], "book"),
    "Electronics": (["Laptops", "Phones", "Headphones", "Cameras"], (1500, 250000),
                    ["Laptop", "Phone", "Headphones", "Camera", "Charger"], "device"),
    "Home & Kitchen": (["Cookware", "Furniture", "Lighting"], (900, 90000),
                       ["Pan", "Chair", "Lamp", "Kettle", "Shelf"], "home"),
    "Clothing": (["Shoes", "Jackets", "T-Shirts", "Hats"], (900, 35000),
                 ["Sneakers", "Jacket", "T-Shirt", "Cap", "Boots"], "clothing"),
    "Sports": (["Running", "Cycling", "Yoga"], (500, 150000),
               ["Running Shoes", "Bike Helmet", "Yoga Mat", "Water Bottle", "Gloves"], "sport"),
    "Toys & Games": (["Board Games", "Puzzles", "LEGO"], (700, 30000),
                     ["Board Game", "Puzzle", "Building Set", "Card Game"], "toy"),
    "Garden": (["Tools", "Plants"], (300, 60000), ["Trowel", "Hose", "Seeds", "Planter"], "garden"),
    "Beauty": (["Skincare", "Fragrance"], (400, 20000), ["Cream", "Serum", "Perfume", "Soap"], "beauty"),
}
ADJECTIVES = ["Classic", "Smart", "Ultra", "Eco", "Pro", "Compact", "Deluxe", "Everyday", "Vintage", "Rapid",
              "Silent", "Bright", "Urban", "Trail", "Cosy", "Essential"]
COLORS = ["black", "white", "red", "blue", "green", "grey", "yellow"]
TAGS = ["sql", "postgresql", "mysql", "sqlite", "mongodb", "redis", "python", "performance", "indexes",
        "transactions", "modelling", "orm", "sqlalchemy", "django", "security", "backups", "scaling", "caching",
        "analytics", "json", "full-text-search", "migrations", "testing", "data-quality", "tutorial", "news",
        "review", "video", "beginner", "advanced"]
POST_TOPICS = ["Choosing a database", "Indexes explained", "Why transactions matter", "JSON in PostgreSQL",
               "Caching with Redis", "Modelling documents", "Keyset pagination", "Backups that work",
               "The N+1 problem", "Safe migrations", "Testing database code", "Full-text search",
               "Window functions", "Sharding by key", "Read replicas", "Rate limiting"]
REVIEW_TITLES = {5: ["Excellent", "Love it", "Perfect", "Five stars"], 4: ["Very good", "Nice", "Worth it"],
                 3: ["OK", "Average", "Does the job"], 2: ["Disappointing", "Not great"],
                 1: ["Broke after a week", "Do not buy", "Terrible"]}
REVIEW_BODIES = {5: ["Exactly what I needed. 😍", "Great quality, fast delivery!", "Would buy again 👍",
                     "My kids love it."],
                 4: ["Good value for money.", "Works well, packaging could be better.", "Solid, as described."],
                 3: ["It's fine, nothing special.", "Smaller than expected.", "Does what it says."],
                 2: ["The colour isn't as shown.", "Stopped working properly after a month. 😕"],
                 1: ["Arrived broken, \"customer service\" never answered.", "Waste of money. 👎"]}
COMMENT_BODIES = ["Great post, thanks!", "Could you cover MySQL too?", "This saved me hours.",
                  "I disagree with the part about indexes.", "Clear explanation 👏", "What about Redis?",
                  "Typo in the second example.", "Bookmarked.", "Can you share the code?", "Très utile, merci !"]
STATUSES_OLD = ["delivered"] * 90 + ["cancelled"] * 6 + ["refunded"] * 4
STATUSES_RECENT = ["pending"] * 15 + ["paid"] * 30 + ["shipped"] * 40 + ["cancelled"] * 10 + ["delivered"] * 5
ITEMS_PER_ORDER = list(accumulate([30, 25, 18, 12, 7, 4, 2, 2]))  # 1..8 items, mean about 2.7
EVENT_TYPES = [("page_view", 60), ("search", 15), ("add_to_cart", 12), ("purchase", 5), ("login", 8)]
MONTH_WEIGHT = [8, 7, 8, 8, 8, 8, 7, 7, 8, 9, 13, 14]  # out of 14: a November-December peak


def ts(seconds: int) -> str:
    """Seconds since START -> 'YYYY-MM-DD HH:MM:SS' (UTC)."""
    return (START + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def zipf_cum_weights(n: int) -> list[int]:
    """Integer cumulative weights ~ 1/rank: a few items are very popular."""
    return list(accumulate(1_000_000 // (rank + 1) + 1 for rank in range(n)))


def pick(rng: random.Random, cum_weights: list[int]) -> int:
    """Index drawn with the given integer cumulative weights."""
    return bisect(cum_weights, rng.random() * cum_weights[-1])


def time_between(rng: random.Random, lo: int, hi: int) -> int:
    """A moment in [lo, hi], favouring recent times and the November-December peak."""
    if hi <= lo:
        return lo
    while True:
        # max of two uniforms: density grows linearly with time (the shop grows)
        t = lo + int(max(rng.random(), rng.random()) * (hi - lo))
        month = (START + dt.timedelta(seconds=t)).month
        if rng.randrange(14) < MONTH_WEIGHT[month - 1]:
            return t


class Writer:
    """Writes one CSV file per table, with a header; ``None`` is written as an empty field."""

    def __init__(self, folder: Path, name: str, columns: list[str]):
        self.path = folder / f"{name}.csv"
        self.fh = open(self.path, "w", newline="", encoding="utf-8")
        self.csv = csv.writer(self.fh, lineterminator="\n")
        self.csv.writerow(columns)
        self.rows = 0

    def write(self, row) -> None:
        self.csv.writerow(row)
        self.rows += 1

    def close(self) -> None:
        self.fh.close()


def attributes(rng: random.Random, kind: str) -> str | None:
    if rng.randrange(10) == 0:
        return None
    if kind == "book":
        value = {"pages": rng.randrange(90, 900), "language": rng.choice(["en", "en", "en", "de", "fr", "es"]),
                 "format": rng.choice(["paperback", "hardcover", "ebook"])}
    elif kind == "device":
        value = {"color": rng.choice(COLORS), "warranty_years": rng.choice([1, 2, 3]),
                 "wireless": rng.choice([True, False])}
        if rng.randrange(2):
            value["ram_gb"] = rng.choice([8, 16, 32, 64])
    elif kind == "clothing":
        value = {"color": rng.choice(COLORS), "sizes": sorted(rng.sample(["XS", "S", "M", "L", "XL"], 3)),
                 "material": rng.choice(["cotton", "wool", "polyester", "leather"])}
    elif kind == "sport":
        value = {"color": rng.choice(COLORS), "weight_g": rng.randrange(50, 5000)}
    else:
        value = {"color": rng.choice(COLORS)}
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def generate(folder: Path, scale: str, progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Write the shop's CSV files for ``scale`` into ``folder``; returns rows per table."""
    sizes = SCALES[scale]
    folder.mkdir(parents=True, exist_ok=True)
    tick = progress or (lambda table, rows: None)
    counts: dict[str, int] = {}

    # categories -------------------------------------------------------------------------------
    w = Writer(folder, "categories", ["category_id", "name", "parent_id"])
    leaf_categories: list[tuple[int, str]] = []  # (category_id, attribute kind)
    category_meta: dict[int, tuple] = {}
    next_id = 1
    for top, (subs, price_range, nouns, kind) in CATEGORIES.items():
        top_id = next_id
        w.write([top_id, top, None])
        next_id += 1
        for sub in subs:
            w.write([next_id, sub, top_id])
            leaf_categories.append((next_id, kind))
            category_meta[next_id] = (price_range, nouns, kind)
            next_id += 1
    w.close()
    counts["categories"] = w.rows

    # users --------------------------------------------------------------------------------------
    rng = random.Random(SEED + 1)
    country_cum = list(accumulate(c[1] for c in COUNTRIES))
    w = Writer(folder, "users", ["user_id", "email", "full_name", "country", "city", "birth_year", "signup_at",
                                 "is_active", "marketing_opt_in"])
    user_signup: list[int] = [0]
    user_weight: list[int] = [0]
    for user_id in range(1, sizes["users"] + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = f"{first.lower().translate(ASCII)}.{last.lower().translate(ASCII)}.{user_id}@{rng.choice(DOMAINS)}"
        if rng.randrange(100) == 0:  # trap: stray capitals and spaces
            email = f"  {email[0].upper()}{email[1:]} "
        code, _, cities = COUNTRIES[bisect(country_cum, rng.random() * country_cum[-1])]
        city = rng.choice(cities) if rng.randrange(20) else None
        if city and rng.randrange(60) == 0:
            city += " "  # trap: trailing space
        country = code.lower() if rng.randrange(120) == 0 else code  # trap: lower-case code
        birth_year = rng.randrange(1950, 2009) if rng.randrange(100) >= 15 else None
        signup = time_between(rng, 0, SPAN - 86_400)
        active = 1 if rng.randrange(100) >= 8 else 0
        w.write([user_id, email, f"{first} {last}", country, city, birth_year, ts(signup), active,
                 1 if rng.randrange(3) == 0 else 0])
        user_signup.append(signup)
        # 30% never order; the others with a heavy tail
        user_weight.append(0 if rng.randrange(10) < 3 else rng.choice([1, 1, 1, 2, 2, 3, 5, 8, 13, 40]))
        if user_id % 10_000 == 0:
            tick("users", 10_000)
    w.close()
    counts["users"] = w.rows

    # products -----------------------------------------------------------------------------------
    rng = random.Random(SEED + 2)
    w = Writer(folder, "products", ["product_id", "sku", "name", "category_id", "price", "stock", "created_at",
                                    "attributes", "is_discontinued"])
    product_price: list[int] = [0]
    product_created: list[int] = [0]
    product_name: list[str] = [""]
    for product_id in range(1, sizes["products"] + 1):
        category_id, kind = leaf_categories[rng.randrange(len(leaf_categories))]
        (lo, hi), nouns, _ = category_meta[category_id]
        # cheap things are common: the product of two uniforms leans towards the low end
        cents = lo + int(rng.random() * rng.random() * (hi - lo))
        cents = cents - cents % 100 + 99 if cents > 1000 else cents  # prices end in .99
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(nouns)} {rng.randrange(100, 1000)}"
        created = time_between(rng, 0, SPAN - 30 * 86_400)
        stock = 0 if rng.randrange(20) == 0 else rng.randrange(1, 500)
        w.write([product_id, f"SKU-{product_id:06d}", name, category_id, money(cents), stock, ts(created),
                 attributes(rng, kind), 1 if rng.randrange(33) == 0 else 0])
        product_price.append(cents)
        product_created.append(created)
        product_name.append(name)
    w.close()
    counts["products"] = w.rows

    # popularity: a shuffled Zipf over products (popular products are spread over categories)
    popularity_order = list(range(1, sizes["products"] + 1))
    rng.shuffle(popularity_order)
    popular_cum = zipf_cum_weights(len(popularity_order))
    buyer_ids = [u for u in range(1, sizes["users"] + 1) if user_weight[u]]
    buyer_cum = list(accumulate(user_weight[u] for u in buyer_ids))

    # orders and order items ---------------------------------------------------------------------
    rng = random.Random(SEED + 3)
    orders_w = Writer(folder, "orders", ["order_id", "user_id", "ordered_at", "status", "shipping_country"])
    items_w = Writer(folder, "order_items", ["order_item_id", "order_id", "product_id", "quantity",
                                             "unit_price"])
    user_country = _user_countries(folder)
    order_rows: list[tuple[int, int, int]] = []  # (order_id, user_id, ordered_at) for reviews
    purchases: list[tuple[int, int, int]] = []  # (user_id, product_id, ordered_at)
    item_id = 0
    recent = SPAN - 30 * 86_400
    for order_id in range(1, sizes["orders"] + 1):
        user_id = buyer_ids[pick(rng, buyer_cum)]
        at = time_between(rng, user_signup[user_id], SPAN)
        status = rng.choice(STATUSES_RECENT if at > recent else STATUSES_OLD)
        country = user_country[user_id]
        if rng.randrange(25) == 0:
            country = COUNTRIES[rng.randrange(len(COUNTRIES))][0]  # shipped abroad
        orders_w.write([order_id, user_id, ts(at), status, country.strip().upper()])
        order_rows.append((order_id, user_id, at))
        n_items = 0 if rng.randrange(200) == 0 else pick(rng, ITEMS_PER_ORDER) + 1  # trap: empty orders
        chosen: set[int] = set()
        while len(chosen) < n_items:
            product_id = popularity_order[pick(rng, popular_cum)]
            if product_created[product_id] <= at or rng.randrange(4) == 0:
                chosen.add(product_id)
        for product_id in sorted(chosen):
            item_id += 1
            age_factor = 100 - min(15, (SPAN - at) // (120 * 86_400))  # older orders were cheaper...
            cents = product_price[product_id] * (age_factor + rng.randrange(-3, 8)) // 100  # ...or on sale
            quantity = 1 if rng.randrange(10) < 7 else rng.randrange(2, 6)
            items_w.write([item_id, order_id, product_id, quantity, money(max(cents, 1))])
            purchases.append((user_id, product_id, at))
        if order_id % 10_000 == 0:
            tick("orders", 10_000)
    orders_w.close()
    items_w.close()
    counts["orders"], counts["order_items"] = orders_w.rows, items_w.rows

    # reviews: mostly by people who bought the product -----------------------------------------
    rng = random.Random(SEED + 4)
    w = Writer(folder, "reviews", ["review_id", "product_id", "user_id", "rating", "title", "body", "created_at"])
    seen: set[tuple[int, int]] = set()
    review_id = 0
    rating_cum = list(accumulate([7, 6, 12, 30, 45]))  # ratings 1..5
    attempts = 0
    while review_id < sizes["reviews"] and attempts < sizes["reviews"] * 20:
        attempts += 1
        user_id, product_id, at = purchases[rng.randrange(len(purchases))]
        if (product_id, user_id) in seen:
            continue
        seen.add((product_id, user_id))
        review_id += 1
        rating = pick(rng, rating_cum) + 1
        body = rng.choice(REVIEW_BODIES[rating]) if rng.randrange(5) else None
        delay = rng.randrange(3_600, 60 * 86_400)
        created = at + delay if at + delay <= SPAN else at + (SPAN - at) * rng.randrange(1, 100) // 100
        w.write([review_id, product_id, user_id, rating, rng.choice(REVIEW_TITLES[rating]), body, ts(created)])
    w.close()
    counts["reviews"] = w.rows

    # tags, posts, post_tags, comments ----------------------------------------------------------
    rng = random.Random(SEED + 5)
    w = Writer(folder, "tags", ["tag_id", "name"])
    for tag_id, name in enumerate(TAGS, start=1):
        w.write([tag_id, name])
    w.close()
    counts["tags"] = w.rows

    posts_w = Writer(folder, "posts", ["post_id", "author_id", "kind", "title", "body", "published_at",
                                       "word_count", "duration_seconds", "views"])
    post_tags_w = Writer(folder, "post_tags", ["post_id", "tag_id"])
    authors = [u for u in range(1, sizes["users"] + 1) if u % 37 == 0 or u % 101 == 1]
    published: list[tuple[int, int]] = []  # (post_id, published_at)
    post_cum = zipf_cum_weights(sizes["posts"])
    for post_id in range(1, sizes["posts"] + 1):
        kind = "video" if rng.randrange(10) < 3 else "article"
        topic = rng.choice(POST_TOPICS)
        title = f"{topic}: {'a video walkthrough' if kind == 'video' else rng.choice(['part 1', 'part 2', 'in practice', 'the basics', 'common mistakes'])}"
        body = f"{topic}. " + " ".join(rng.choice(["Start with the data.", "Measure before you optimize.",
                                                   "Keep transactions short.", "Use parameters, always.",
                                                   "Index what you filter on.", "Model for your queries."])
                                        for _ in range(rng.randrange(2, 6)))
        at = time_between(rng, 0, SPAN)
        is_draft = rng.randrange(10) == 0
        views = 0 if is_draft else rng.randrange(10, 500) * (1 + 50 // (1 + rng.randrange(50)))
        posts_w.write([post_id, rng.choice(authors), kind, title, body, None if is_draft else ts(at),
                       rng.randrange(300, 3000) if kind == "article" else None,
                       rng.randrange(60, 3600) if kind == "video" else None, views])
        if not is_draft:
            published.append((post_id, at))
        for tag_id in sorted(rng.sample(range(1, len(TAGS) + 1), rng.randrange(1, 5))):
            post_tags_w.write([post_id, tag_id])
    posts_w.close()
    post_tags_w.close()
    counts["posts"], counts["post_tags"] = posts_w.rows, post_tags_w.rows

    w = Writer(folder, "comments", ["comment_id", "post_id", "user_id", "body", "created_at"])
    published_cum = post_cum[:len(published)]
    for comment_id in range(1, sizes["comments"] + 1):
        post_id, at = published[pick(rng, published_cum)]
        user_id = rng.randrange(1, sizes["users"] + 1)
        w.write([comment_id, post_id, user_id, rng.choice(COMMENT_BODIES),
                 ts(time_between(rng, at, min(SPAN, at + 90 * 86_400)))])
    w.close()
    counts["comments"] = w.rows

    # events: sessions of activity ---------------------------------------------------------------
    rng = random.Random(SEED + 6)
    w = Writer(folder, "events", ["event_id", "user_id", "session_id", "event_type", "occurred_at", "product_id"])
    event_cum = list(accumulate(weight for _, weight in EVENT_TYPES))
    active_users = [u for u in range(1, sizes["users"] + 1) if user_weight[u] or rng.randrange(2)]
    event_id = 0
    for session in range(sizes["sessions"]):
        user_id = None if rng.randrange(10) == 0 else active_users[rng.randrange(len(active_users))]
        session_id = f"{rng.getrandbits(64):016x}"
        at = time_between(rng, user_signup[user_id] if user_id else 0, SPAN - 3600)
        for _ in range(rng.randrange(1, 10)):
            event_type = EVENT_TYPES[pick(rng, event_cum)][0]
            if user_id is None and event_type in ("purchase", "login"):
                event_type = "page_view"
            product_id = (popularity_order[pick(rng, popular_cum)]
                          if event_type in ("page_view", "add_to_cart", "purchase") else None)
            event_id += 1
            w.write([event_id, user_id, session_id, event_type, ts(at), product_id])
            at = min(SPAN, at + rng.randrange(5, 600))
        if session % 10_000 == 9_999:
            tick("events", 10_000)
    w.close()
    counts["events"] = w.rows
    return counts


def _user_countries(folder: Path) -> list[str]:
    with open(folder / "users.csv", newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader)
        return [""] + [row[3] for row in reader]


def read_rows(path: Path) -> Iterator[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader)
        yield from reader
