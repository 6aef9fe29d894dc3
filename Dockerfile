FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    STATIC_MANIFEST=true

WORKDIR /app
RUN useradd --create-home --uid 1000 app
COPY requirements.txt .
# pdqhash builds from source: a C++ compiler for the install, removed again afterwards.
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && pip install -r requirements.txt \
    && apt-get purge -y --auto-remove g++ \
    && rm -rf /var/lib/apt/lists/*
COPY . .
# collectstatic needs a key to import the settings; it is not used for anything else.
# prepare_model exports the shipped classifier's ONNX graph into the image, so that no
# container pays for it at its first analysis.
RUN SECRET_KEY=build-only python manage.py collectstatic --noinput \
    && SECRET_KEY=build-only python manage.py prepare_model \
    && mkdir -p /app/var/media /app/var/models && chown -R app:app /app/var
USER app
EXPOSE 8000
CMD ["gunicorn", "deepfake_site.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4"]
