import { chromium, type Browser } from 'playwright-core'
import { existsSync } from 'node:fs'

// Chromium is found like Postgres and Redis: `make test` installs Debian's package when it is
// missing and it can; here a missing browser fails loudly instead of skipping.
const CANDIDATES = [
  process.env.CHROMIUM_PATH,
  '/usr/bin/chromium',
  '/usr/bin/chromium-browser',
  '/usr/bin/google-chrome',
]

export async function launchChromium(): Promise<Browser> {
  const executablePath = CANDIDATES.find((path) => path && existsSync(path))
  if (!executablePath)
    throw new Error(
      'No Chromium found for the browser tests: install it (apt-get install chromium; `make test` does this as root) or set CHROMIUM_PATH',
    )
  return chromium.launch({
    executablePath,
    // Flags for a headless run as root on a machine without outside network.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
}
