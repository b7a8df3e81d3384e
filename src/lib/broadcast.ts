import type IORedis from 'ioredis'
import { config } from '../config'
import { logger } from './logger'
import { createSubscriberConnection, logRedisErrors, redis, whenRedisReady } from './redis'

// Messages to every API process (session revocations, catalogue changes) over Redis pub/sub,
// on one subscriber connection per process. Pub/sub keeps nothing for a process that is away:
// each listener is told when its subscription (re)starts, to drop what it may have missed.

type Listener = {
  /** A message on the channel (JSON). */
  onMessage: (message: unknown) => void
  /** The subscription (re)started: messages sent meanwhile are lost. */
  onResync: () => void
}

const listeners = new Map<string, Listener>()
let subscriber: IORedis | undefined
let subscribed = false

const channelName = (name: string) => `${config.QUEUE_PREFIX}:${name}`

function connect() {
  const connection = createSubscriberConnection()
  subscriber = connection
  logRedisErrors(connection, 'broadcasts')
  connection.on('close', () => {
    subscribed = false
  })
  connection.on('ready', async () => {
    try {
      await connection.subscribe(...[...listeners.keys()].map(channelName))
      for (const listener of listeners.values()) listener.onResync()
      subscribed = true
    } catch (error) {
      logger.warn({ err: error }, 'could not subscribe to broadcasts')
    }
  })
  connection.on('message', (channel: string, message: string) => {
    const listener = listeners.get(channel.slice(config.QUEUE_PREFIX.length + 1))
    try {
      listener?.onMessage(JSON.parse(message))
    } catch {
      logger.warn({ channel }, 'ignored a malformed broadcast')
    }
  })
}

/**
 * Listens on `channel` from now on (the connection opens on first use). Call at module load,
 * before the first `listening()`: channels are subscribed when the connection becomes ready.
 */
export function listen(channel: string, listener: Listener) {
  listeners.set(channel, listener)
}

/** Opens the subscription now (the API at start-up), rather than on the first `listening()`. */
export function startBroadcasts() {
  if (!subscriber) connect()
}

/** Whether this process is subscribed now, so that it cannot miss a message. */
export function listening(): boolean {
  startBroadcasts()
  return subscribed
}

/** Sends a message to every process listening on `channel` (this one included). */
export async function broadcast(channel: string, message: unknown) {
  try {
    if (!(await whenRedisReady(1_000))) throw new Error('Redis is not connected')
    await redis().publish(channelName(channel), JSON.stringify(message))
  } catch (error) {
    // Redis is down: the other processes are not subscribed either, so they keep nothing cached.
    logger.warn({ err: error, channel }, 'could not broadcast')
  }
}

export async function closeBroadcasts() {
  const connection = subscriber
  subscriber = undefined
  subscribed = false
  connection?.disconnect()
}
