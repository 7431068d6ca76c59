# Larder: the CLI and the feature server. `docker compose up` runs it beside Redis and PostgreSQL.
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin ./bin
COPY src ./src
COPY sdk ./sdk
COPY feature-definitions ./feature-definitions
COPY docker ./docker
ENV LARDER_REPO=/app/feature-definitions LARDER_HOME=/data LARDER_HOST=0.0.0.0
VOLUME ["/data"]
EXPOSE 6566
ENTRYPOINT ["node", "bin/larder.mjs"]
CMD ["quickstart"]
