"""Names and phrases the generator draws from: the fictional organisation Kestrel Labs.

Kept apart from the generator's logic so both stay readable. Every list is ordered (the
generator's output must not depend on hash order).
"""

from __future__ import annotations

__all__ = [
    "CHITCHAT",
    "DATACENTERS",
    "DECISIONS",
    "ERROR_MEANINGS",
    "FIRST_NAMES",
    "GROUPS",
    "HOST_ROLES",
    "INCIDENT_CAUSES",
    "INCIDENT_FIXES",
    "INCIDENT_SYMPTOMS",
    "LAST_NAMES",
    "LIBRARIES",
    "MONTHS",
    "PACKAGES",
    "PIN_REASONS",
    "PREFERENCES",
    "PROCEDURES",
    "ROOMS",
    "SERVICE_DOMAINS",
    "SERVICE_KINDS",
    "TEAMS",
    "TICKET_WORK",
]

FIRST_NAMES = [
    "Priya", "Tomasz", "Aiko", "Marcus", "Leila", "Sven", "Nadia", "Oren", "Beatriz", "Kwame",
    "Ingrid", "Rafael", "Mei", "Dmitri", "Yara", "Callum", "Fatima", "Jonas", "Chiara", "Emeka",
    "Hana", "Lucas", "Zainab", "Mateo", "Freya", "Arjun", "Sofia", "Bjorn", "Amara", "Theo",
    "Elif", "Diego", "Maren", "Kofi", "Anika", "Ruben", "Selin", "Hugo", "Noor", "Pavel",
]

LAST_NAMES = [
    "Shah", "Kowalski", "Tanaka", "Oyelaran", "Haddad", "Lindqvist", "Petrova", "Ben-David", "Carvalho",
    "Mensah", "Solberg", "Quintero", "Zhou", "Volkov", "Farouk", "MacLeod", "Rahimi", "Brandt", "Ferri",
    "Okafor", "Sato", "Moreau", "Idris", "Alvarez", "Nyberg", "Iyer", "Marchetti", "Eriksen", "Achebe",
    "Laurent", "Demir", "Salazar", "Holm", "Asante", "Richter", "Vermeer", "Aksoy", "Duval", "Karimi", "Novak",
]

TEAMS = [
    "Falcon", "Basalt", "Heron", "Quartz", "Juniper", "Osprey", "Cobalt", "Lynx", "Tundra", "Marigold",
    "Kestrel", "Obsidian", "Willow", "Pelican", "Granite", "Saffron",
]

GROUPS = ["Platform", "Payments", "Growth", "Data", "Infrastructure", "Customer Experience"]

SERVICE_DOMAINS = [
    "billing", "checkout", "search", "notification", "auth", "inventory", "pricing", "shipping",
    "reporting", "onboarding", "analytics", "payroll", "catalog", "recommendation", "fraud", "audit",
    "export", "scheduler", "invoicing", "refund", "subscription", "identity", "media", "geocoding",
    "tax", "loyalty", "feedback", "webhook", "ledger", "quota", "session", "translation", "email",
    "sms", "billing-export", "warehouse", "returns", "coupon", "consent", "archive",
]

SERVICE_KINDS = ["service", "API", "worker", "gateway", "pipeline", "indexer", "dispatcher", "backend"]

#: Library surface forms: a bare package name or "the X library". Each is used verbatim everywhere.
LIBRARIES = [
    "libfixed", "libquill", "libtern", "libsorrel", "libmarrow", "libdrift", "libcairn", "libspindle",
    "libferrule", "libtallow", "libgimbal", "libbrine", "libkestrel", "libvellum", "libpylon", "libsconce",
    "the tessellate library", "the dovetail library", "the kiln library", "the sprocket library",
    "the halyard library", "the bramble library", "the cobble library", "the lantern library",
    "the wicket library", "the jetty library", "the plinth library", "the gusset library",
    "the rivet library", "the trellis library", "the tinder library", "the mortar library",
    "the spigot library", "the bollard library", "the quoin library", "the flange library",
    "the lintel library", "the sextant library", "the capstan library", "the ferrite library",
    "the garnet library", "the pewter library", "the thimble library", "the caliper library",
]

#: Region → the city of its datacenter; hostnames carry the region, the city only appears in memories.
DATACENTERS = {
    "eu-west": "Dublin", "eu-central": "Frankfurt", "us-east": "Ashburn", "us-west": "Portland",
    "ap-south": "Mumbai", "ap-east": "Singapore",
}

HOST_ROLES = ["db", "api", "cache", "queue", "worker", "search", "edge", "batch"]

PACKAGES = [
    "ledger", "quillmark", "tidepool", "fastcsv", "orbitdb", "pyroute", "snowflake-ids", "kelpie",
    "httpretry", "cronix", "jsonpatchy", "pgshim", "redlock-lite", "avrokit", "tzshift", "moneyfmt",
    "s3sync", "grpc-lite", "yamlguard", "dramaq",
]

PIN_REASONS = [
    "the next minor release changed rounding behaviour",
    "newer versions leak file handles under load",
    "the upgrade breaks our custom serializer",
    "later releases dropped Python 3.10 support",
    "a regression in the next release doubles memory use",
    "the maintainers changed the timeout defaults afterwards",
    "the security fix we need landed in exactly this release",
    "the upgrade changes the wire format our partners rely on",
]

INCIDENT_SYMPTOMS = [
    "a latency spike", "a burst of 502 errors", "duplicate charges", "stuck background jobs",
    "a memory leak", "missing webhook deliveries", "a cascade of timeouts", "stale cache reads",
    "elevated error rates", "a full disk", "dropped messages", "slow queries",
]

INCIDENT_CAUSES = [
    "an exhausted connection pool", "a bad config push", "an expired TLS certificate",
    "a runaway cron job", "a schema migration that locked a hot table", "a DNS misconfiguration",
    "a noisy neighbour on the shared cluster", "a retry storm from a partner integration",
    "clock skew between replicas", "an unbounded in-memory queue", "a missing index",
    "a feature flag flipped in the wrong environment",
]

INCIDENT_FIXES = [
    "rolling back the deploy", "raising the pool size", "renewing the certificate", "pausing the cron job",
    "adding the missing index", "restarting the consumers", "reverting the config change",
    "failing over to the replica", "rate-limiting the partner", "purging the cache",
]

ERROR_MEANINGS = [
    "the upstream payment provider rejected the request",
    "the tenant has exceeded its monthly quota",
    "a signature on the webhook payload did not verify",
    "the request arrived after the idempotency window closed",
    "the currency is not enabled for that merchant",
    "the feature flag service could not be reached",
    "the caller's token has been revoked",
    "a required field was missing from the import file",
    "the downstream queue is full and the job was parked",
    "the address could not be geocoded",
]

#: (key, task phrase with {S}, two ways of describing the steps).
PROCEDURES = [
    ("restart", "restart {S}", ["drain it from the load balancer first, then run the rollout restart job",
                                    "scale it to zero, wait for in-flight jobs to finish, then scale it back up"]),
    ("rotate-keys", "rotate the API keys of {S}", ["generate new keys in the vault, deploy, then revoke the old ones",
                                                       "run the key-rotation playbook and confirm the health check stays green"]),
    ("rollback", "roll back a bad release of {S}", ["redeploy the previous image tag from the release dashboard",
                                                        "use the one-click revert in the deploy tool and post in the incident channel"]),
    ("cache", "flush the cache in front of {S}", ["run the purge script with the service prefix",
                                                      "bump the cache namespace version in the config map"]),
    ("migrate", "run database migrations for {S}", ["apply them from the migration job, never from a laptop",
                                                        "take a snapshot first, then run the migrate task in the admin console"]),
    ("scale", "scale up {S}", ["raise the replica count in the Helm values and open a change request",
                                   "bump the autoscaler minimum and watch the queue depth for ten minutes"]),
    ("reindex", "reindex {S}", ["trigger the reindex workflow and keep the old index until the swap",
                                    "build the new index offline and flip the alias when the counts match"]),
    ("replay", "replay failed jobs in {S}", ["move them from the dead-letter queue with the replay tool",
                                                 "export the failed job ids and resubmit them in batches of one hundred"]),
    ("heapdump", "take a heap dump of {S}", ["exec into the pod and call the diagnostics endpoint",
                                                 "use the profiling sidecar and upload the dump to the team bucket"]),
    ("debug", "turn on debug logging for {S}", ["set the log level flag for ten minutes at most",
                                                    "patch the logging config map and remember to revert it"]),
]

#: (key, memory phrase after the person's name, question with {P}).
PREFERENCES = [
    ("merge", ["prefers squash merges over merge commits", "prefers rebase merges to keep a linear history"],
     "What merge style does {P} prefer?"),
    ("pr-size", ["likes small pull requests, ideally under three hundred lines", "is fine with large pull requests if they come with a walkthrough"],
     "What size of pull request does {P} like?"),
    ("meetings", ["prefers async updates in the team channel to status meetings", "prefers a short daily status meeting to written updates"],
     "Does {P} prefer status meetings or async updates?"),
    ("editor", ["uses Neovim with the shared LSP setup", "uses VS Code with the dev container", "uses Emacs with magit"],
     "Which editor does {P} use?"),
    ("hours", ["works early hours and is offline after four in the afternoon", "usually starts late and works into the evening"],
     "What working hours does {P} keep?"),
    ("contact", ["wants urgent questions by phone, not chat", "prefers a chat message over email for anything urgent"],
     "How does {P} want to be contacted about urgent things?"),
    ("review", ["reviews code in the morning and asks for reviews before lunch", "batches code reviews on Tuesday and Thursday afternoons"],
     "When does {P} do code reviews?"),
    ("testing", ["wants property-based tests for parsers", "prefers integration tests over mocks"],
     "What kind of tests does {P} want?"),
    ("docs", ["likes design docs written before any code", "prefers a working prototype to a design doc"],
     "Does {P} want a design doc first?"),
    ("pairing", ["enjoys pair programming on tricky bugs", "prefers to debug alone and then walk someone through the fix"],
     "Does {P} like pair programming?"),
]

#: (key, change phrase with {S}, reasons).
DECISIONS = [
    ("postgres", "move {S} to Postgres 16", ["the old version leaves support in the spring", "we need logical replication"]),
    ("webhooks", "switch {S} from polling to webhooks", ["the partner rate-limited our polling", "polling added minutes of delay"]),
    ("split", "split {S} into read and write paths", ["reads dominated the load", "write latency suffered during reports"]),
    ("xml", "drop XML payload support in {S}", ["only one customer still used it", "the XML parser was a security risk"]),
    ("redis", "cache responses of {S} in Redis", ["the same lookups repeated thousands of times", "the database was saturated at peak"]),
    ("grpc", "expose {S} over gRPC", ["JSON encoding dominated CPU time", "clients wanted streaming"]),
    ("freeze", "freeze new features in {S} for a quarter", ["the error budget was spent", "the team needed time for reliability work"]),
    ("rewrite", "rewrite {S} in Go", ["the Python version could not keep up with traffic", "the team already ran everything else in Go"]),
    ("retire", "retire the v1 endpoints of {S}", ["traffic on them fell below one percent", "keeping them blocked the schema change"]),
    ("outbox", "add a transactional outbox to {S}", ["events were lost when the broker restarted", "consumers saw events before commits"]),
]

#: (key, work phrase with {S}).
TICKET_WORK = [
    ("retries", "adding retries with jitter to {S} client"),
    ("metrics", "exporting queue-depth metrics from {S}"),
    ("timeouts", "tightening the request timeouts of {S}"),
    ("pagination", "adding cursor pagination to {S} list endpoint"),
    ("tracing", "propagating trace context through {S}"),
    ("idempotency", "making {S} writes idempotent"),
    ("flaky", "fixing the flaky integration tests of {S}"),
    ("deps", "upgrading the base image of {S}"),
]

ROOMS = ["Tapir", "Narwhal", "Okapi", "Quokka", "Axolotl", "Pangolin", "Ibis", "Gecko"]

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]

#: Office chatter: noise that mentions people, teams and rooms but answers nothing.
CHITCHAT = [
    "Lunch-and-learn on {topic} next {day} in the {room} room.",
    "The {room} room projector is broken again; book {room2} instead.",
    "{P} brought cinnamon buns for the {T} team on {day}.",
    "Reminder from {P}: the {T} team retro moved to {day}.",
    "{P} is giving a talk on {topic} at a local meetup in {month}.",
    "The {T} team celebrated shipping their quarterly goals with a boat trip.",
    "{P} and {P2} swapped on-call weeks in {month}.",
    "The {T} team's planning session ran long; follow-ups are in the shared doc.",
    "{P} asked for volunteers to mentor interns over the summer.",
    "Book club this month: a history of {topic}, hosted by {P}.",
    "{P} is collecting ideas for the next offsite; the {room} room whiteboard has a list.",
    "Summary of the {month} {T} team retro: fewer meetings, more pairing, and clearer tickets.",
]
