import type { HousekeepingTasks } from '../../outbox/workers'
import { deleteEndedSessions, deleteSpentRefreshTokens } from './sessions'

/** Sessions ended over a week ago, and refresh tokens spent longer ago than their retention. */
export const authHousekeeping: HousekeepingTasks = {
  sessions: deleteEndedSessions,
  refreshTokens: deleteSpentRefreshTokens,
}
