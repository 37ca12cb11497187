# One image for the three services, the migrations job and the operator CLI.
# The service to run is the command: `python -m services.points` (or rewards, alerts).
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN groupadd --system loyalty && useradd --system --gid loyalty --home /app loyalty

# Dependencies first, so code changes do not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p shared services tooling \
    && touch shared/__init__.py services/__init__.py tooling/__init__.py \
    && pip install . \
    && pip uninstall --yes loyalty-platform

# The code, migrations included (tooling.migrate finds them next to tooling/); tooling/ is
# the `loyalty` CLI and the migrations job.
COPY shared ./shared
COPY services ./services
COPY tooling ./tooling
COPY migrations ./migrations
RUN pip install --no-deps -e . && chown -R loyalty:loyalty /app

USER loyalty
EXPOSE 8001 8002 8003
CMD ["python", "-m", "services.points"]
