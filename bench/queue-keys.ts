import IORedis from 'ioredis'

// Each bench run queues its jobs under `bench-<pid>:` in the Redis it was given. A run deletes
// its own keys when it ends or is interrupted, and those of earlier runs whose process is gone
// (killed outright), so that benchmarks leave nothing behind.

export const benchPrefix = (pid: number) => `bench-${pid}`

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Deletes the keys of this run (`ownPid`) and of bench runs no longer alive; returns how many. */
export async function deleteBenchQueueKeys(redisUrl: string, ownPid: number) {
  const redis = new IORedis(redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true })
  let deleted = 0
  try {
    await redis.connect()
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', 'bench-*', 'COUNT', 1000)
      const ours = keys.filter((key) => {
        const pid = Number(/^bench-(\d+):/.exec(key)?.[1])
        return Number.isInteger(pid) && (pid === ownPid || !isAlive(pid))
      })
      if (ours.length) deleted += await redis.del(...ours)
      cursor = next
    } while (cursor !== '0')
  } finally {
    redis.disconnect()
  }
  return deleted
}
