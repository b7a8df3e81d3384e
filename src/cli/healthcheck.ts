export {}

// The container HEALTHCHECK: exits 0 when `path` answers 200 on this machine's port.
// Usage: bun src/cli/healthcheck.ts [port] [path]   (default: $PORT, else 3000; /health)
// Standalone on purpose: it must not need the API's configuration (JWT_SECRET and so on).
const port = Number(process.argv[2] ?? process.env.PORT ?? 3000)
const path = process.argv[3] ?? '/health'

try {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2_000) })
  process.exit(response.ok ? 0 : 1)
} catch {
  process.exit(1)
}
