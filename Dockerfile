# Build stage: all dependencies, compile TypeScript to dist/.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No dependency needs its install script to build (esbuild's, used only by tsx in development, is skipped).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY plugins ./plugins
COPY routes ./routes
RUN npm run build

# Runtime stage: production dependencies and the compiled JavaScript only.
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The dashboard's page (/dashboard), served as it is: no build step.
COPY public ./public

# Configure through the environment (docker run -e, compose environment:), not a .env file: .dockerignore keeps
# .env* out of the image, and the health check reads PORT and TLS_CERT_FILE from the environment.
ENV HOST=0.0.0.0
EXPOSE 8443
USER node

# Liveness: GET /health over HTTP, or HTTPS when TLS_CERT_FILE is set (certificate not verified: it may be self-signed).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "--no-warnings", "-e", "const tls = process.env.TLS_CERT_FILE !== undefined; if (tls) process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; fetch('http' + (tls ? 's' : '') + '://127.0.0.1:' + (process.env.PORT ?? '8443') + '/health').then((res) => process.exit(res.ok ? 0 : 1), () => process.exit(1))"]

# node directly, not npm start: SIGTERM must reach the process so it can end live calls and flush Redis.
CMD ["node", "dist/src/server.js"]
