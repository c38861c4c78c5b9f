# The journey engine's command line, for the engine's services in docker-compose.yml.
FROM python:3.11.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md ./
COPY engine engine
COPY projections projections
COPY schemas schemas
COPY consumers consumers
COPY stores stores
COPY journey journey
RUN pip install --no-cache-dir .
RUN useradd --create-home journey
USER journey
ENTRYPOINT ["journey"]
CMD ["--help"]
