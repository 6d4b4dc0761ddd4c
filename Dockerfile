# park: one image for every role (API server, scheduler, worker, faust billing app).
# Build: docker build -t park .   Run the whole layout: docker compose up
FROM python:3.11-slim

WORKDIR /srv/park
COPY pyproject.toml README.md ./
COPY park ./park
RUN pip install --no-cache-dir '.[faust]' \
    && useradd --create-home --uid 10001 park \
    && mkdir -p /var/lib/park && chown park /var/lib/park
USER park
WORKDIR /var/lib/park
EXPOSE 8080
CMD ["park", "--help"]
