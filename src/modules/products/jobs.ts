import { config } from '../../config'
import type { HousekeepingTasks } from '../../outbox/workers'
import { deleteOldProductChanges } from './queries'

export const productHousekeeping: HousekeepingTasks = {
  productChanges: () => deleteOldProductChanges(config.PRODUCT_CHANGES_RETENTION_MINUTES),
}
