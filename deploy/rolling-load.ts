// Load for deploy/rolling-update-check.sh: 16 connections placing orders and 16 reading products
// through the stack's entry point, until SIGTERM; then one JSON line: requests by status,
// connection errors, and the ids of the orders placed.
// Usage: bun deploy/rolling-load.ts <base url> <product id> <token>...
const [base, productArg, ...tokens] = process.argv.slice(2)
const productId = Number(productArg)
const statuses: Record<string, number> = {}
const connectionErrors: string[] = []
const placed: number[] = []
let running = true

async function attempt(request: () => Promise<Response>, onCreated?: (body: { id: number }) => void) {
  try {
    const response = await request()
    statuses[response.status] = (statuses[response.status] ?? 0) + 1
    if (response.status === 201 && onCreated) onCreated((await response.json()) as { id: number })
    else await response.arrayBuffer()
  } catch (error) {
    connectionErrors.push(String(error))
  }
}

const orderer = async (token: string) => {
  while (running)
    await attempt(
      () =>
        fetch(`${base}/api/orders`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify({ items: [{ product_id: productId, quantity: 1 }] }),
        }),
      (order) => placed.push(order.id),
    )
}
const reader = async () => {
  while (running) await attempt(() => fetch(`${base}/api/products/${productId}`))
}

const loops = [
  ...Array.from({ length: 16 }, (_, i) => orderer(tokens[i % tokens.length]!)),
  ...Array.from({ length: 16 }, reader),
]
process.on('SIGTERM', () => {
  running = false
})
await Promise.all(loops)
console.log(
  JSON.stringify({
    statuses,
    connectionErrors: connectionErrors.length,
    firstErrors: connectionErrors.slice(0, 5),
    placed,
  }),
)
