import { errorMessage } from './errors.js';

/**
 * Why a file or folder belay tried to read could not be read, and what to do
 * about it: keyed on the error's code (EACCES, ENOENT, …), never on its text,
 * so that the advice matches the cause (a permission problem is not fixed by
 * editing the file's syntax).
 */
export interface ReadProblem {
  /** The errno code, when the error had one. */
  code: string | undefined;
  /** A few words: "permission denied", "it is a folder, not a file". */
  reason: string;
  /** What to do, for a `next:` line. */
  hint: string;
}

/** The system error code of a Node error (EACCES, ENOENT, …), or undefined. */
export function errnoCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
}

function whoRunsBelay(): string {
  const uid = process.getuid?.();
  const user = process.env.USER ?? process.env.LOGNAME;
  if (uid === undefined) return 'the user running belay';
  return `the user running belay (${user ? `${user}, ` : ''}uid ${uid})`;
}

/**
 * `what`: "the config", "the revision file", "the migrations folder"…;
 * `folder`: whether a folder was expected (readdir) rather than a file.
 */
export function readProblem(error: unknown, what: string, options: { folder?: boolean } = {}): ReadProblem | undefined {
  const code = errnoCode(error);
  const kind = options.folder ? 'folder' : 'file';
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return {
        code,
        reason: 'permission denied',
        hint: `Make ${what} readable by ${whoRunsBelay()}: chmod or chown it (${options.folder ? 'r and x on the folder, ' : ''}every folder above it searchable), or run belay as a user that may read it.`,
      };
    case 'ENOENT':
      return { code, reason: 'it does not exist (a symbolic link to nothing?)', hint: `Create ${what}, or fix the link or the path that names it.` };
    case 'EISDIR':
      return { code, reason: 'it is a folder, not a file', hint: `Replace the folder with ${what} itself, or point belay at the file.` };
    case 'ENOTDIR':
      return {
        code,
        reason: options.folder ? 'it is not a folder' : 'a part of its path is not a folder',
        hint: options.folder ? `Point belay at a folder for ${what}.` : `Fix the path to ${what}.`,
      };
    case 'ELOOP':
      return { code, reason: 'a loop of symbolic links', hint: `Make the link to ${what} point at a real ${kind}.` };
    case 'EMFILE':
    case 'ENFILE':
      return { code, reason: 'too many open files', hint: 'Raise the open-file limit (ulimit -n) or close other programs, and run again.' };
    case 'EIO':
      return { code, reason: 'an I/O error', hint: `Check the disk or the file system that holds ${what}.` };
    case undefined:
      return undefined;
    default:
      return { code, reason: code, hint: `Check that ${what} is a readable ${kind} for ${whoRunsBelay()}.` };
  }
}

/** What to do about `error`, a write, creation or deletion in `dir` that failed: a clause to end with what to run then. */
export function writeFix(dir: string, error: unknown): string {
  switch (errnoCode(error)) {
    case 'ENOSPC':
    case 'EDQUOT':
      return `Free space on the disk that holds ${dir}`;
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return `Make ${dir} writable by ${whoRunsBelay()} (and its file system read-write; an immutable file, chattr +i, refuses root too)`;
    case 'EIO':
      return `Check the disk or the file system that holds ${dir}`;
    default:
      return `Check that ${dir} is a folder ${whoRunsBelay()} can write`;
  }
}

/** Why a file or folder could not be written, created or deleted, in a few words with its errno code: for a message. */
export function writeProblem(error: unknown): string {
  const code = errnoCode(error);
  if (code === undefined) return errorMessage(error);
  const reasons: Record<string, string> = {
    EROFS: 'the file system is read-only',
    EACCES: 'permission denied',
    EPERM: 'permission denied',
    ENOSPC: 'the disk is full',
    EDQUOT: 'the disk quota is used up',
    EIO: 'an I/O error',
    EEXIST: 'a file of that name exists',
    ENOENT: 'a folder on its path does not exist',
    ENOTDIR: 'a part of its path is not a folder',
  };
  const reason = reasons[code];
  if (reason !== undefined) return `${code}: ${reason}`;
  // node's own message already starts with the code ("ENOENT: no such file or directory, open …")
  const message = errorMessage(error);
  return message.startsWith(`${code}:`) ? message : `${code}: ${message}`;
}
