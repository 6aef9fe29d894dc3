"""Django settings, read from the environment (README lists every variable).

One module for every environment: development, tests, CI and production differ only in
their environment variables (or a `.env` file beside manage.py, which never overrides a
variable that is already set).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
# ENV_FILE=/dev/null ignores the local .env (the settings tests do, to see defaults).
environ.Env.read_env(env.str("ENV_FILE", default=str(BASE_DIR / ".env")))

DEBUG = env.bool("DEBUG", default=False)

# Secrets have no default outside development: a production deployment that forgets one
# fails at start-up instead of running with a key everybody can read in this file.
if DEBUG:
    SECRET_KEY = env.str("SECRET_KEY", default="insecure-development-key-never-use-in-production")
else:
    SECRET_KEY = env.str("SECRET_KEY")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "axes",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "deepfake_site",
    "detection",
    "moderation",
    "webhooks",
    "workbench",
]

MIDDLEWARE = [
    # First, so that it also sees the refusals of every middleware below it.
    "deepfake_site.middleware.unread_request_body_drained",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "deepfake_site.middleware.private_responses_not_stored",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a locked-out log-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "deepfake_site.urls"
WSGI_APPLICATION = "deepfake_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "deepfake_site.navigation.nav_items",
            ],
        },
    },
]

# SQLite is the embedded default for one machine; DATABASE_URL switches to PostgreSQL.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)
    # A file, not memory, so that a Celery worker started by the tests sees the test data.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
    DATABASES["default"]["OPTIONS"] = {
        # Seconds a connection waits for another's write lock before "database is locked".
        "timeout": 20,
        # Take the write lock when a transaction starts: a transaction that read first and
        # then wrote could otherwise deadlock with another writer, which SQLite breaks by
        # failing it at once, whatever the timeout (web and worker write side by side).
        "transaction_mode": "IMMEDIATE",
        # WAL lets readers go on while one connection writes.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # Not a rule: the one place Django tells about every new password (see its docstring).
    {"NAME": "deepfake_site.passwords.RevokeApiTokensOnPasswordChange"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

LANGUAGE_CODE = "en-us"
# Dates as 2026-12-02 and 2026-12-02 14:05 on every page, whatever the locale's habit.
FORMAT_MODULE_PATH = ["deepfake_site.formats"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
# Uploads are private: they live outside STATIC_ROOT and are served only by views that
# check access, never by a MEDIA_URL route.
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
# Hashed, compressed file names need `collectstatic` first: the Docker image runs it and
# sets STATIC_MANIFEST=true; development and tests serve the files as they are.
STATIC_MANIFEST = env.bool("STATIC_MANIFEST", default=False)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if STATIC_MANIFEST
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# Without collectstatic, WhiteNoise serves straight from STATICFILES_DIRS.
WHITENOISE_USE_FINDERS = not STATIC_MANIFEST
WHITENOISE_MANIFEST_STRICT = False

# --- Celery -------------------------------------------------------------------------------
# Redis in CI and docker compose; without a server, kombu's filesystem transport under var/
# is a real broker: the worker is still a separate process that reads messages from disk.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_DIR = Path(env.str("CELERY_BROKER_DIR", default=str(VAR_DIR / "broker")))
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
# Redis re-delivers an unacknowledged message after this many seconds; it must exceed the
# hard time limit or a long task would run twice at once.
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(CELERY_BROKER_DIR / "messages"),
        "data_folder_out": str(CELERY_BROKER_DIR / "messages"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
    _default_result_backend = f"file://{CELERY_BROKER_DIR / 'results'}"
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
    _default_result_backend = CELERY_BROKER_URL
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=_default_result_backend)
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_EXPIRES = 3600
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A worker child is replaced after this many tasks, or after a task that leaves it above
# this resident size (KiB; Celery checks after each task): whatever one image made the
# allocator keep is given back. A child holding the models takes 1 to 1.5 GB, and a
# 40-megapixel analysis adds about 250 MB while it runs.
CELERY_WORKER_MAX_TASKS_PER_CHILD = env.int("CELERY_WORKER_MAX_TASKS_PER_CHILD", default=1000)
CELERY_WORKER_MAX_MEMORY_PER_CHILD = env.int(
    "CELERY_WORKER_MAX_MEMORY_PER_CHILD", default=3_000_000
)
# A pool child replaced after a crash or a recycle must load the models (seconds; over
# 30 s when it has to export the ONNX graph) before it says it is up. Celery's default of
# 4 s killed every replacement on a busy machine, so a worker that lost a child never
# analysed again.
CELERY_WORKER_PROC_ALIVE_TIMEOUT = env.float("CELERY_WORKER_PROC_ALIVE_TIMEOUT", default=180.0)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Uploads and analysis -----------------------------------------------------------------
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_BYTES", default=20_000_000)
UPLOAD_MAX_PIXELS = env.int("UPLOAD_MAX_PIXELS", default=40_000_000)
# Faces are searched on a copy at most DETECT_MAX_SIDE long: in a much longer strip no face
# is tall enough to find (at about 85:1 the copy is under MTCNN's 12-pixel window).
UPLOAD_MAX_ASPECT_RATIO = env.float("UPLOAD_MAX_ASPECT_RATIO", default=20.0)
# Memory one upload may take to decode, estimated from its header (see
# detection.ml.images.decode_bytes_estimate): a 40-megapixel 8-bit RGB photo needs 320 MB,
# turned upright included; 16-bit and transparent images need more per pixel.
UPLOAD_MAX_DECODE_BYTES = env.int("UPLOAD_MAX_DECODE_BYTES", default=320_000_000)
# Uploads one account may have queued or processing at once: beyond it the worker queue
# would be one account's backlog.
UPLOAD_MAX_IN_FLIGHT = env.int("UPLOAD_MAX_IN_FLIGHT", default=20)
# Photos one request may carry (the batch form and the API's several `image` parts); each one
# still passes every per-file check, rate limits included.
UPLOAD_MAX_FILES = env.int("UPLOAD_MAX_FILES", default=10)
# Beyond it Django stops reading the request, which is refused whole (REQUEST_TOO_LARGE).
DATA_UPLOAD_MAX_NUMBER_FILES = UPLOAD_MAX_FILES
# DATA_UPLOAD_MAX_MEMORY_SIZE does not count file data: this handler enforces the byte limit
# (the larger of the photo and video limits) while the body streams in, with or without a
# Content-Length header; the upload's own kind then sets its limit.
FILE_UPLOAD_HANDLERS = [
    "detection.uploads.LimitedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
ANALYSIS_MAX_ATTEMPTS = env.int("ANALYSIS_MAX_ATTEMPTS", default=3)
ANALYSIS_RETRY_DELAY_SECONDS = env.int("ANALYSIS_RETRY_DELAY_SECONDS", default=5)
# A claim with no sign of life for this long is abandoned (its worker died without the broker
# noticing); it must exceed a photo's hard time limit so that a live task is never taken
# over. A video's claim shows life every second or so while its frames are analysed.
ANALYSIS_STALE_AFTER_SECONDS = env.int("ANALYSIS_STALE_AFTER_SECONDS", default=600)
SWEEP_INTERVAL_SECONDS = env.int("SWEEP_INTERVAL_SECONDS", default=60)
# --- Video ----------------------------------------------------------------------------------
# MP4 (H.264), WebM (VP8/VP9) and MOV (H.264) clips come through the same upload; these
# limits are checked from the container before anything is decoded, and again as it decodes.
VIDEO_MAX_BYTES = env.int("VIDEO_MAX_BYTES", default=100_000_000)
VIDEO_MAX_SECONDS = env.float("VIDEO_MAX_SECONDS", default=180.0)
# One frame's pixels: 4K (3840 x 2160) by default.
VIDEO_MAX_PIXELS = env.int("VIDEO_MAX_PIXELS", default=8_294_400)
# Frames decoded bound the work: three minutes at 60 frames a second.
VIDEO_MAX_FRAMES = env.int("VIDEO_MAX_FRAMES", default=10_800)
# Frames analysed: this many a second, at most VIDEO_MAX_SAMPLES, spread over the clip.
VIDEO_SAMPLE_FPS = env.float("VIDEO_SAMPLE_FPS", default=2.0)
VIDEO_MAX_SAMPLES = env.int("VIDEO_MAX_SAMPLES", default=120)
# Good-quality frames a person's track needs to count towards the verdict.
VIDEO_MIN_TRACK_FRAMES = env.int("VIDEO_MIN_TRACK_FRAMES", default=3)
# A video's time limits: a photo's, plus this many seconds per second of clip, the hard
# limit capped at VIDEO_TIME_LIMIT_MAX, which must stay below the broker's visibility
# timeout (a task still running then would be delivered to a second worker).
VIDEO_SOFT_TIME_LIMIT_PER_SECOND = env.float("VIDEO_SOFT_TIME_LIMIT_PER_SECOND", default=5.0)
VIDEO_TIME_LIMIT_MAX = env.int("VIDEO_TIME_LIMIT_MAX", default=1800)
if not (
    CELERY_TASK_SOFT_TIME_LIMIT < CELERY_TASK_TIME_LIMIT <= VIDEO_TIME_LIMIT_MAX
    and VIDEO_TIME_LIMIT_MAX < CELERY_VISIBILITY_TIMEOUT
):
    raise ImproperlyConfigured(
        "time limits out of order: CELERY_TASK_SOFT_TIME_LIMIT < CELERY_TASK_TIME_LIMIT "
        "<= VIDEO_TIME_LIMIT_MAX < CELERY_VISIBILITY_TIMEOUT"
    )
CELERY_TASK_ROUTES = {
    "detection.tasks.analyze_submission": {"queue": "inference"},
    "detection.tasks.analyze_video": {"queue": "video"},
}
CELERY_BEAT_SCHEDULE = {
    "requeue-stuck-submissions": {
        "task": "detection.tasks.sweep_stuck_submissions",
        "schedule": SWEEP_INTERVAL_SECONDS,
    },
    "send-due-webhook-deliveries": {
        "task": "webhooks.tasks.sweep_webhook_deliveries",
        "schedule": SWEEP_INTERVAL_SECONDS,
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- API ----------------------------------------------------------------------------------
# API tokens (django-rest-knox) are kept as hashes: the key is shown once, when it is made.
# deepfake_site.services gives each token this lifetime when it makes it.
API_TOKEN_TTL_DAYS = env.int("API_TOKEN_TTL_DAYS", default=90)
REST_KNOX = {
    # Clients of the earlier DRF tokens already send `Authorization: Token <key>`.
    "AUTH_HEADER_PREFIX": "Token",
}
# `page_size` asks for more rows per page, up to this many.
API_MAX_PAGE_SIZE = env.int("API_MAX_PAGE_SIZE", default=100)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "deepfake_site.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "deepfake_site.api.AutoSchema",
    "EXCEPTION_HANDLER": "detection.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Faceproof API",
    "DESCRIPTION": (
        "Upload photos and videos for deepfake analysis and read per-face results; moderators "
        "work the review queue and export evidence; every account can register webhooks. "
        "Every error is a JSON object `{code, detail}`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No badge image from validator.swagger.io: it would send the schema's address to a
    # third party, and the Content-Security-Policy loads images from this site only.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # Fields that may be empty are null in the API, never "" beside an enum: no BlankEnum.
    "ENUM_ADD_EXPLICIT_BLANK_NULL_CHOICE": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "TAGS": [
        {"name": "Submissions", "description": "Upload photos and videos and read their analysis."},
        {
            "name": "Model",
            "description": "The running model's card: what its scores mean, how it was measured.",
        },
        {
            "name": "Moderation",
            "description": "The review queue, decisions and evidence (moderators and staff).",
        },
        {"name": "Webhooks", "description": "Signed events POSTed to your own server."},
    ],
    # One name per choice set, wherever a serializer repeats it.
    "ENUM_NAME_OVERRIDES": {
        "VerdictEnum": "detection.models.Submission.Verdict",
        "SubmissionStatusEnum": "detection.models.Submission.Status",
        "FaceQualityEnum": "detection.models.Face.Quality",
        "CaseStateEnum": "moderation.models.ReviewCase.State",
        "DecisionEnum": "moderation.models.Decision",
        "WebhookEventEnum": "webhooks.models.Event",
        "DeliveryStatusEnum": "webhooks.models.WebhookDelivery.Status",
    },
}

# --- Accounts -----------------------------------------------------------------------------
MODERATORS_GROUP = "moderators"
AUTHENTICATION_BACKENDS = [
    # django-axes counts failed log-ins and refuses a locked-out user before the password
    # is even checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
# Lock the username from that address: a guesser cannot lock a victim out from elsewhere.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True

# --- Client address -----------------------------------------------------------------------
# Reverse proxies in front of gunicorn (docker compose: nginx, so 1). Behind one, REMOTE_ADDR
# is the proxy's address for every request; lockouts and per-address upload limits must count
# the client's, which each proxy appends to X-Forwarded-For (gunicorn.conf.py reads it too).
PROXY_COUNT = env.int("PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "deepfake_site.http.client_address"
RATELIMIT_IP_META_KEY = "deepfake_site.http.client_address"

# --- Abuse limits -------------------------------------------------------------------------
UPLOAD_RATE_PER_USER = env.str("UPLOAD_RATE_PER_USER", default="30/m")
UPLOAD_RATE_PER_IP = env.str("UPLOAD_RATE_PER_IP", default="60/m")
SIGNUP_RATE_PER_IP = env.str("SIGNUP_RATE_PER_IP", default="10/h")
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", default=True)
# Counting must be shared by every web process: Redis (CACHE_URL) in production. Django's
# own RedisCache increments atomically, though django-ratelimit only lists django-redis.
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]
if CACHES["default"]["BACKEND"].endswith("LocMemCache"):
    # One machine without Redis: each process counts for itself, which still bounds abuse.
    SILENCED_SYSTEM_CHECKS.append("django_ratelimit.E003")

# --- HTTPS and cookies (production defaults; `check --deploy` is clean with DEBUG off) ------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (the usual deployment).
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https")
    if env.bool("TRUST_X_FORWARDED_PROTO", default=True)
    else None
)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# Content-Security-Policy (django-csp): scripts and styles come only from this site's own
# files, never inline, so markup injected into a page cannot run or restyle anything; no
# plugins, no <base> elsewhere, forms post only here, and no site may frame these pages.
# data: images are Swagger UI's icons, which its stylesheet embeds.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        # Videos play from the access-checked media view on this site.
        "media-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"client_errors": {"()": "deepfake_site.log.ClientErrorsWithoutTraceback"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["client_errors"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's own handlers go: its console handler printed every record a second time
        # with DEBUG on, and its mail handler writes to ADMINS, which this site does not set.
        # The root handler prints each record once, at LOG_LEVEL.
        "django": {"handlers": [], "level": "NOTSET"},
        "django.db.backends": {"level": "WARNING"},
        # The ONNX exporter narrates each of its optimisation passes at INFO.
        "onnx_ir": {"level": "WARNING"},
        "onnxscript": {"level": "WARNING"},
    },
}

# --- Analysis pipeline --------------------------------------------------------------------
# The classifier checkpoint. The default is the research model trained on DFDC crops and
# committed under models/ (see its model card). `manage.py fetch_model` and
# `manage.py make_demo_checkpoint` write to this path, except the committed model, which they
# replace only when given it as --output. A model card `<stem>.json` beside the checkpoint may
# set the input size, thresholds and calibration (they override those below).
DEEPFAKE_CHECKPOINT = Path(
    env.str(
        "DEEPFAKE_CHECKPOINT", default=str(BASE_DIR / "models" / "faceproof-face-resnet-150.pth")
    )
)
DEEPFAKE_HF_REPO = env.str(
    "DEEPFAKE_HF_REPO", default="aaronespasa/deepfake-detection-resnetinceptionv1"
)
DEEPFAKE_HF_FILENAME = env.str("DEEPFAKE_HF_FILENAME", default="resnetinceptionv1_epoch_32.pth")
DEEPFAKE_DEVICE = env.str("DEEPFAKE_DEVICE", default="cpu")
# ONNX Runtime scores faces about twice as fast as PyTorch on a CPU; it has no GPU build here.
DEEPFAKE_RUNTIME = env.str(
    "DEEPFAKE_RUNTIME", default="onnxruntime" if DEEPFAKE_DEVICE == "cpu" else "torch"
)
DEEPFAKE_MODEL_CACHE = Path(env.str("DEEPFAKE_MODEL_CACHE", default=str(VAR_DIR / "model-cache")))
FACE_MIN_SIZE = env.int("FACE_MIN_SIZE", default=40)  # pixels of the original image
FACE_DETECTION_THRESHOLD = env.float("FACE_DETECTION_THRESHOLD", default=0.95)
# A face below any of these is shown but does not decide the verdict (detection.ml.quality).
FACE_QUALITY_MIN_SIZE = env.int("FACE_QUALITY_MIN_SIZE", default=60)
FACE_QUALITY_MIN_SHARPNESS = env.float("FACE_QUALITY_MIN_SHARPNESS", default=8.0)
FACE_QUALITY_MAX_YAW = env.float("FACE_QUALITY_MAX_YAW", default=0.6)
FACE_QUALITY_MIN_DETECTION = env.float("FACE_QUALITY_MIN_DETECTION", default=0.97)
FLAG_THRESHOLD = env.float("FLAG_THRESHOLD", default=0.5)  # P(fake) at or above: 'fake'
UNCERTAIN_THRESHOLD = env.float("UNCERTAIN_THRESHOLD", default=0.3)  # and above: 'uncertain'
# Faces are searched on a copy whose long side is at most this; crops come from the original.
DETECT_MAX_SIDE = env.int("DETECT_MAX_SIDE", default=1024)
# Unset: one thread per physical core available to the process (a worker child's share).
TORCH_NUM_THREADS = env.int("TORCH_NUM_THREADS", default=None)

# --- Webhooks -----------------------------------------------------------------------------
# Links in webhook payloads (the worker that sends them has no request to take a host from).
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
# Deliveries never go to private, loopback or link-local addresses (SSRF) unless this is on:
# for tests and for receivers on the same private network.
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env.bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default=False)
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=5.0)
# Attempt n+1 waits BASE * 3**(n-1) seconds after attempt n: with 8 attempts and 60 s, the
# last one goes out about 18 hours after the first.
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=8)
WEBHOOK_RETRY_BASE_SECONDS = env.float("WEBHOOK_RETRY_BASE_SECONDS", default=60.0)
# Deliveries in a row that used up every attempt before an endpoint is disabled.
WEBHOOK_DISABLE_AFTER_FAILURES = env.int("WEBHOOK_DISABLE_AFTER_FAILURES", default=5)
WEBHOOK_DELIVERY_RETENTION_DAYS = env.int("WEBHOOK_DELIVERY_RETENTION_DAYS", default=30)

# --- Moderation ---------------------------------------------------------------------------
# How long "next case" reserves a case for one moderator; an unfinished case then returns
# to the queue by itself.
MODERATION_LEASE_MINUTES = env.int("MODERATION_LEASE_MINUTES", default=15)
# Share of "no manipulation found" photos sent to moderators as quality checks (measures
# what the model misses) and share of decisions checked by a second, independent moderator.
QA_SAMPLE_RATE = env.float("QA_SAMPLE_RATE", default=0.05)
DOUBLE_REVIEW_RATE = env.float("DOUBLE_REVIEW_RATE", default=0.1)

# --- Near-copies (PDQ) --------------------------------------------------------------------
# Two images whose PDQ hashes differ in at most this many of their 256 bits are copies of
# one another (Hasher-Matcher-Actioner's default); decisions, clusters and banks use it.
PDQ_MATCH_DISTANCE = env.int("PDQ_MATCH_DISTANCE", default=31)
# Below this PDQ quality (0-100) an image has too little detail for its hash to mean
# anything (flat colours, near-blank pictures all hash alike): it is matched with nothing.
PDQ_MIN_QUALITY = env.int("PDQ_MIN_QUALITY", default=50)
