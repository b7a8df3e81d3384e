import pino from 'pino'
import { config } from '../config'

export const logger = pino({
  level: config.LOG_LEVEL,
  redact: {
    paths: ['password', '*.password', 'token', '*.token', 'headers.authorization', 'req.headers.authorization'],
    censor: '[redacted]',
  },
  ...(process.env.LOG_PRETTY === '1' ? { transport: { target: 'pino-pretty', options: { colorize: true } } } : {}),
})
