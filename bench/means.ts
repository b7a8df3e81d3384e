// The alternated phases' arithmetic: rates of the runs of one kind against those of another.

export const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length

/** The mean orders/s of the runs `picked` chooses as a share of the mean of those `baseline` chooses (NaN without runs). */
export function shareOfMeans<Row extends { placedPerSecond: number }>(
  rows: Row[],
  picked: (row: Row) => boolean,
  baseline: (row: Row) => boolean,
) {
  const rate = (choose: (row: Row) => boolean) => mean(rows.filter(choose).map((row) => row.placedPerSecond))
  return rate(picked) / rate(baseline)
}
