// Shared settings for `make bench`.
export const bench = {
  databaseUrl: process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/order_api_bench',
  redisUrl: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379',
  jwtSecret: 'bench-secret-0123456789abcdef0123456789abcdef',
  connections: Number(process.env.BENCH_CONNECTIONS ?? 32),
  durationSeconds: Number(process.env.BENCH_DURATION ?? 10),
  warmupSeconds: Number(process.env.BENCH_WARMUP ?? 3),
  poolSize: Number(process.env.BENCH_POOL_SIZE ?? 10),
  // The catalogue scenarios search 100 000 products, as the search target says; BENCH_PRODUCTS=1000000
  // is the large catalogue's run.
  products: Number(process.env.BENCH_PRODUCTS ?? 100_000),
  customers: 1_000,
  productStock: 1_000_000,
  hotStock: 100_000_000,
}
