import postgres from 'postgres'

/** Creates the database named in `url` when it does not exist yet (CREATE DATABASE cannot run in a transaction). */
export async function ensureDatabase(url: string): Promise<void> {
  const target = new URL(url)
  const name = decodeURIComponent(target.pathname.replace(/^\//, ''))
  if (!name) throw new Error('DATABASE_URL names no database')
  const maintenance = new URL(url)
  maintenance.pathname = '/postgres'
  const admin = postgres(maintenance.toString(), { max: 1, onnotice: () => {} })
  try {
    const [found] = await admin`SELECT 1 AS found FROM pg_database WHERE datname = ${name}`
    if (!found) {
      await admin`CREATE DATABASE ${admin(name)}`.catch((error: { code?: string }) => {
        // Another process created it between our check and our CREATE: that is what we wanted.
        if (error.code !== '42P04' && error.code !== '23505') throw error
      })
    }
  } finally {
    await admin.end()
  }
}
