/**
 * Control characters but tab and newline (C0, DEL, C1): a terminal or a CI
 * log acts on them instead of showing them, and XML 1.0 allows none of C0.
 */
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/** The text with each control character written as its escape (`\x1b`), as in PostgreSQL's E'' strings. */
export function showControls(text: string): string {
  return text.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
