import { logger } from '../../lib/logger'
import { orderBatchSize } from './metrics'
import type { OrderOutcome, OrderRequest } from './batch'

type Pending = { request: OrderRequest; resolve: (outcome: OrderOutcome) => void; reject: (error: unknown) => void }

export type Placement = {
  /** A lone order without an Idempotency-Key: the one-statement path. */
  single: (request: OrderRequest) => Promise<OrderOutcome>
  /** Several orders (or a keyed one) in one transaction, outcomes in request order. */
  batch: (requests: OrderRequest[]) => Promise<OrderOutcome[]>
}

/**
 * Group commit for orders. While a batch is being placed, the orders that arrive wait and go
 * together in the next one, so batches grow with load and one process keeps one statement in
 * flight on a hot product instead of dozens queueing on its row lock. An idle API places a lone
 * order at once: there is no timer. Orders keep their arrival order inside a batch.
 */
export class OrderCombiner {
  private waiting: Pending[] = []
  private placing = false

  constructor(
    private readonly placement: Placement,
    private readonly maxBatch = 64,
  ) {}

  submit(request: OrderRequest): Promise<OrderOutcome> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ request, resolve, reject })
      if (!this.placing) void this.placeWaiting()
    })
  }

  private async placeWaiting() {
    this.placing = true
    try {
      while (this.waiting.length) {
        const batch = this.waiting.splice(0, this.maxBatch)
        orderBatchSize.observe(batch.length)
        await this.place(batch)
      }
    } finally {
      this.placing = false
    }
  }

  private async place(batch: Pending[]) {
    const [first] = batch
    if (batch.length === 1 && !first!.request.idempotencyKey)
      return this.settle(first!, () => this.placement.single(first!.request))
    try {
      const outcomes = await this.placement.batch(batch.map((pending) => pending.request))
      for (const [index, pending] of batch.entries()) pending.resolve(outcomes[index]!)
    } catch (error) {
      if (batch.length === 1) return first!.reject(error)
      // Something unexpected failed the whole batch (a constraint, a user deleted meanwhile):
      // each order is placed again on its own, so only the one at fault fails.
      logger.warn({ err: error, orders: batch.length }, 'order batch failed; placing its orders one by one')
      for (const pending of batch)
        await this.settle(pending, async () => {
          const [outcome] = pending.request.idempotencyKey
            ? await this.placement.batch([pending.request])
            : [await this.placement.single(pending.request)]
          return outcome!
        })
    }
  }

  private async settle(pending: Pending, work: () => Promise<OrderOutcome>) {
    try {
      pending.resolve(await work())
    } catch (error) {
      pending.reject(error)
    }
  }
}
