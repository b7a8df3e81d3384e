import { Elysia } from 'elysia'
import { errorResponses, IdParams } from '../../lib/model'
import { authGuard } from '../auth/guard'
import { CreateExportBody, Export, ExportCsv, ExportQueued } from './model'
import { createExport, downloadExport, getExport } from './service'

export const exportRoutes = new Elysia({ prefix: '/api/admin/exports', detail: { tags: ['Exports'] } })
  .use(authGuard)
  .post(
    '',
    async ({ body, principal, set }) => {
      set.status = 202
      return createExport(principal.id, body)
    },
    {
      auth: 'admin',
      body: CreateExportBody,
      parse: 'json',
      response: { 202: ExportQueued, ...errorResponses(400, 401, 403) },
      detail: {
        summary: 'Ask for a CSV export of order lines (admin)',
        description:
          'The worker builds it (queue `exports`), reading in chunks with bounded memory; poll `GET /api/admin/exports/{id}`. `from`/`to` bound `created_at` (inclusive); `from` after `to` → 400. ' +
          "Cells that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, tab or carriage return) are written with a leading `'`.",
      },
    },
  )
  .get('/:id', ({ params }) => getExport(params.id), {
    auth: 'admin',
    params: IdParams,
    response: { 200: Export, ...errorResponses(400, 401, 403, 404) },
    detail: {
      summary: 'An export and how far it got (admin)',
      description: 'Kept `EXPORT_TTL_HOURS` (default 24) after it is done, then 404.',
    },
  })
  .get('/:id/download', ({ params }) => downloadExport(params.id), {
    auth: 'admin',
    params: IdParams,
    response: { 200: ExportCsv, ...errorResponses(400, 401, 403, 404, 409) },
    detail: {
      summary: 'Download an export: text/csv (admin)',
      description: 'Served by any API replica from the database. Before it is done → 409; once expired → 404.',
    },
  })
