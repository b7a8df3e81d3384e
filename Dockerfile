# syntax=docker/dockerfile:1
# One image for the API, the worker and migrations; the command picks which:
#   API (default)    bun run start
#   worker           bun run worker
#   migrate + seed   sh -c "bun run db:migrate && bun run db:seed"
ARG BUN_VERSION=1.4.5

FROM oven/bun:${BUN_VERSION} AS deps
WORKDIR /app
COPY package.json bun.lock ./
RUN bun install --frozen-lockfile --production --ignore-scripts

FROM oven/bun:${BUN_VERSION} AS runtime
WORKDIR /app
ENV NODE_ENV=production \
    PORT=3000
COPY --from=deps --chown=bun:bun /app/node_modules ./node_modules
COPY --chown=bun:bun package.json bun.lock tsconfig.json ./
COPY --chown=bun:bun drizzle ./drizzle
COPY --chown=bun:bun src ./src
# The official image ships an unprivileged `bun` user.
USER bun
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["bun", "src/cli/healthcheck.ts"]
CMD ["bun", "run", "start"]
