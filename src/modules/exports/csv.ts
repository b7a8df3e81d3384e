// CSV as RFC 4180 writes it (fields separated by commas, lines ended by CRLF, a field holding a
// comma, a quote or a line break enclosed in double quotes with its quotes doubled), made safe to
// open in a spreadsheet: a cell that starts with a character a spreadsheet reads as the start of a
// formula (=, +, -, @, or a tab or carriage return) gets a single quote in front and is quoted, as
// OWASP's guidance on CSV injection says. The quote shows in the cell; the data is not run.

const FORMULA_START = /^[=+\-@\t\r]/
const NEEDS_QUOTES = /[",\r\n]/

export function csvCell(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return ''
  let text = String(value)
  const neutralised = FORMULA_START.test(text)
  if (neutralised) text = `'${text}`
  return neutralised || NEEDS_QUOTES.test(text) ? `"${text.replaceAll('"', '""')}"` : text
}

export const csvLine = (cells: readonly (string | number | null | undefined)[]) => `${cells.map(csvCell).join(',')}\r\n`
