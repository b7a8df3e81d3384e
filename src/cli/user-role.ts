import { sql } from '../db/client'
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
      `${user.email} is now ${user.role} (it counts at once; a promoted user logs in again for an admin token)`,
    )
  }
} finally {
  await sql.end({ timeout: 5 })
}
