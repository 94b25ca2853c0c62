const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Whether the text is a uuid: plugin ids in labels and URLs are checked before any query. */
export function isUuid(text: string): boolean {
  return UUID.test(text)
}
