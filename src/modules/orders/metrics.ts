import client from 'prom-client'
import { registry } from '../../lib/metrics'
import { workerRegistry } from '../../lib/worker-metrics'

// The orders' Prometheus metrics: placements on the API's registry, confirmations on the worker's.

export const ordersPlaced = new client.Counter({
  name: 'orders_placed_total',
  help: 'Orders placed (201)',
  registers: [registry],
})

export const ordersRejected = new client.Counter({
  name: 'orders_rejected_total',
  help: 'Orders refused by the stock rules, by reason',
  labelNames: ['reason'] as const,
  registers: [registry],
})

export const orderBatchSize = new client.Histogram({
  name: 'order_batch_size',
  help: 'Orders placed together in one batch (1 when the API is idle)',
  buckets: [1, 2, 4, 8, 16, 32, 64],
  registers: [registry],
})

export const ordersConfirmed = new client.Counter({
  name: 'orders_confirmed_total',
  help: 'Orders moved pending → confirmed by the confirmation jobs',
  registers: [workerRegistry],
})
