// When a 5-field cron expression (as config.ts accepts them: numbers,
// ranges, steps, lists; UTC, as Cloudflare runs cron triggers) fires next.
// Day of month and day of week follow cron's rule: when both are restricted,
// a day matching either one fires.

interface Field { values: Set<number>; any: boolean }

function parseField(text: string, min: number, max: number): Field {
  const values = new Set<number>();
  for (const part of text.split(",")) {
    const [range, stepText] = part.split("/") as [string, string | undefined];
    const step = stepText ? Number(stepText) : 1;
    let [from, to] = [min, max];
    if (range !== "*") {
      const [a, b] = range.split("-");
      from = Number(a);
      to = b === undefined ? (stepText ? max : from) : Number(b);
    }
    for (let v = from; v <= to; v += step) values.add(v);
  }
  return { values, any: text === "*" };
}

/** The first minute strictly after `after` at which the expression fires, or null within a year and a day. */
export function nextCronRun(expression: string, after: Date): Date | null {
  const [m, h, dom, mon, dow] = expression.trim().split(/\s+/) as [string, string, string, string, string];
  const minutes = parseField(m, 0, 59);
  const hours = parseField(h, 0, 23);
  const days = parseField(dom, 1, 31);
  const months = parseField(mon, 1, 12);
  const weekdays = parseField(dow, 0, 7);
  if (weekdays.values.has(7)) weekdays.values.add(0); // 7 is Sunday too
  const dayMatches = (d: Date) => {
    const byMonthDay = days.values.has(d.getUTCDate());
    const byWeekday = weekdays.values.has(d.getUTCDay());
    if (days.any || weekdays.any) return (days.any || byMonthDay) && (weekdays.any || byWeekday);
    return byMonthDay || byWeekday;
  };
  const start = new Date(Math.floor(after.getTime() / 60_000) * 60_000 + 60_000);
  const day = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), start.getUTCDate()));
  for (let i = 0; i < 367; i++, day.setUTCDate(day.getUTCDate() + 1)) {
    if (!months.values.has(day.getUTCMonth() + 1) || !dayMatches(day)) continue;
    for (let hour = 0; hour < 24; hour++) {
      if (!hours.values.has(hour)) continue;
      for (let minute = 0; minute < 60; minute++) {
        if (!minutes.values.has(minute)) continue;
        const at = new Date(day.getTime() + (hour * 60 + minute) * 60_000);
        if (at >= start) return at;
      }
    }
  }
  return null;
}
