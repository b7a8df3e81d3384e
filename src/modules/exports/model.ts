import { Type as t, type Static } from '@sinclair/typebox'
import { exportStatus, orderStatus } from '../../db/schema'
import { enumOf } from '../../lib/model'

export const ExportStatus = enumOf(exportStatus.enumValues)
export type ExportStatus = Static<typeof ExportStatus>

// A date, or a date and time with an optional offset (none: UTC).
const IsoTime = (description: string) =>
  t.String({
    pattern: '^\\d{4}-\\d{2}-\\d{2}(T\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,9})?)?(Z|[+-]\\d{2}:?\\d{2})?)?$',
    description: `${description}; ISO-8601, a date or a date and time`,
    examples: ['2026-12-01T00:00:00Z'],
  })

export const CreateExportBody = t.Object(
  {
    type: t.Literal('orders', { description: 'What to export: `orders`, one CSV line per order line' }),
    from: t.Optional(IsoTime('Orders created at or after this')),
    to: t.Optional(IsoTime('Orders created at or before this (not before `from`)')),
    status: t.Optional(enumOf(orderStatus.enumValues, { description: 'Only orders in this status' })),
  },
  { examples: [{ type: 'orders', from: '2026-12-01T00:00:00Z', status: 'delivered' }] },
)
export type CreateExportBody = Static<typeof CreateExportBody>

export const ExportQueued = t.Object(
  { id: t.Integer(), type: t.String(), status: ExportStatus, created_at: t.String({ format: 'date-time' }) },
  { title: 'ExportQueued' },
)

export const Export = t.Object(
  {
    id: t.Integer(),
    type: t.String(),
    status: ExportStatus,
    row_count: t.Integer({ description: 'CSV lines written so far (the header not counted)' }),
    created_at: t.String({ format: 'date-time' }),
    finished_at: t.Union([t.String({ format: 'date-time' }), t.Null()]),
    error: t.Union([t.String(), t.Null()], { description: 'Why the export failed' }),
    download_url: t.Union([t.String(), t.Null()], { description: 'Where to download the file once `done`' }),
  },
  { title: 'Export' },
)
export type Export = Static<typeof Export>

/** The CSV's columns, in order: the file's first line. */
export const EXPORT_COLUMNS = [
  'order_id',
  'created_at',
  'status',
  'user_id',
  'email',
  'total_cents',
  'product_id',
  'name',
  'quantity',
  'unit_price_cents',
  'line_total_cents',
  'shipping_country',
] as const

export const ExportCsv = t.String({
  title: 'ExportCsv',
  contentMediaType: 'text/csv',
  description: `text/csv; charset=utf-8 (RFC 4180), header \`${EXPORT_COLUMNS.join(',')}\`, one line per order line`,
})
