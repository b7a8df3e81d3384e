import { sql } from '../db/client'
import { closeRedis } from '../lib/redis'
import { setRole } from '../modules/auth/service'

const [email, role] = process.argv.slice(2)
if (!email || (role !== 'admin' && role !== 'customer')) {
  console.error('Usage: bun run user:role <email> admin|customer')
  process.exit(2)
}

try {
  const user = await setRole(email, role)
  if (!user) {
    console.error(`No user with email ${email.trim().toLowerCase()}`)
    process.exitCode = 1
  } else {
    console.log(
      `${user.email} is now ${user.role}; their sessions have ended, so they sign in again (with the new role)`,
    )
  }
} finally {
  await closeRedis()
  await sql.end({ timeout: 5 })
}
