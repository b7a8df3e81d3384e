import { config } from '../config'
import { logger } from './logger'
import { createSubscriberConnection, logRedisErrors, type RedisConnection, redis, whenRedisReady } from './redis'

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
let subscriber: RedisConnection | undefined
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
  // A cluster moves its subscription to another node when the node it was on leaves.
  connection.on('-node', () => {
    for (const listener of listeners.values()) listener.onResync()
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
 * Listens on `channel` once the subscription opens: call before `startBroadcasts()`, since
 * channels are subscribed when the connection becomes ready.
 */
export function listen(channel: string, listener: Listener) {
  listeners.set(channel, listener)
}

/** Opens the subscription (the API at start-up, after its listeners are in). */
export function startBroadcasts() {
  if (!subscriber) connect()
}

/** Whether this process is subscribed now, so that it cannot miss a message. */
export function listening(): boolean {
  return subscribed
}

/** Publishes once; false when Redis did not take the message. */
async function publish(channel: string, message: unknown) {
  try {
    if (!(await whenRedisReady(1_000))) throw new Error('Redis is not connected')
    await redis().publish(channelName(channel), JSON.stringify(message))
    return true
  } catch (error) {
    logger.warn({ err: error, channel }, 'could not broadcast')
    return false
  }
}

/**
 * Sends a message to every process listening on `channel` (this one included). A process that
 * cannot reach Redis while the others can (a partition) tries again in the background for up to
 * `retryForMs`: the time the listeners may otherwise act on what the message would change.
 */
export async function broadcast(channel: string, message: unknown, retryForMs = 0) {
  if ((await publish(channel, message)) || !retryForMs) return
  void (async () => {
    const deadline = Date.now() + retryForMs
    for (let delay = 100; Date.now() + delay < deadline; delay = Math.min(delay * 2, 1_000)) {
      await Bun.sleep(delay)
      if (await publish(channel, message)) {
        logger.info({ channel }, 'broadcast sent on a retry')
        return
      }
    }
    logger.warn({ channel }, 'broadcast given up: what listeners remember expires on its own')
  })()
}

export async function closeBroadcasts() {
  const connection = subscriber
  subscriber = undefined
  subscribed = false
  connection?.disconnect()
}
