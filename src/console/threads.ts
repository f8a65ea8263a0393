/**
 * Pure helpers of the console's thread list and history, kept out of console.ts so that they are
 * tested outside a browser.
 */

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/**
 * How long ago `then` was, as a thread list says it: "just now", "5 min ago", "3 h ago" (within
 * a day), "yesterday", "4 days ago" (by the calendar), then the date ("12 Mar", with the year once it is another year's).
 * Times in the future (another machine's clock) are "just now". Dates are in local time, which the
 * caller's `now` and `then` share.
 */
export function relativeTime(then: Date, now: Date): string {
  const ago = now.getTime() - then.getTime();
  if (ago < MINUTE) return "just now";
  if (ago < HOUR) return `${Math.floor(ago / MINUTE)} min ago`;
  if (ago < DAY) return `${Math.floor(ago / HOUR)} h ago`;
  const days = calendarDaysBetween(then, now);
  if (days === 1) return "yesterday";
  if (days < 7) return `${days} days ago`;
  const date = `${then.getDate()} ${MONTHS[then.getMonth()]}`;
  return then.getFullYear() === now.getFullYear() ? date : `${date} ${then.getFullYear()}`;
}

/** Midnights between the two dates, local time: "yesterday" is the day before, not 24 hours ago. */
function calendarDaysBetween(then: Date, now: Date): number {
  const midnight = (date: Date) => new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime();
  return Math.round((midnight(now) - midnight(then)) / DAY);
}

/** What a thread is called in the list: its name, else the first line of its first message. */
export function threadTitle(thread: { name: string | null; preview: string }): string {
  const name = thread.name?.trim();
  if (name) return name;
  const firstLine = thread.preview.trim().split("\n", 1)[0]?.trim();
  return firstLine || "(no message)";
}

/**
 * The stored turns to show above a turn that is shown from its run's events (after a reload, or
 * on opening a thread that a turn runs on), so that it is not shown twice. While the run runs, its
 * turn is the thread's newest if codex has stored it yet, and then it is `in_progress`; once it
 * has finished it is the newest, with the run's message, unless it never reached codex.
 * `running`: whether the run was still running after the turns were read.
 */
export function turnsBesideRun<T extends { input: string; status: string }>(turns: readonly T[], run: { message: string; running: boolean }): T[] {
  const newest = turns.at(-1);
  const isRunsTurn = newest !== undefined && (newest.status === "in_progress" || (!run.running && newest.input === run.message));
  return isRunsTurn ? turns.slice(0, -1) : [...turns];
}
