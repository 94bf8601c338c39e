// A trial's story in order: its start, each extension, each notice sent (with how it went out),
// the next notice due, and its end.

const NOTICE_TITLES = { expired: 'Trial expired', enforced: 'Restricted', lifted: 'Restriction lifted' };

function noticeTitle(kind) {
  const reminder = /^reminder-(\d+)d$/.exec(kind);
  if (reminder) return `Reminder sent: ${reminder[1]} days left`;
  return NOTICE_TITLES[kind] ?? kind;
}

/** How a notice went out, from trial_notifications: email and webhook each sent, pending or not configured. */
function delivery(record) {
  if (!record) return '';
  const channel = (name, status) => (status === 'none' ? null : `${name} ${status}`);
  const channels = [channel('email', record.emailStatus), channel('webhook', record.webhookStatus)].filter(Boolean);
  const failed = record.lastError ? ` · last error: ${record.lastError}` : '';
  return (channels.length ? channels.join(', ') : 'recorded (no channel configured)') + failed;
}

export function trialTimeline(trial, records, organisation, now = Date.now()) {
  if (!trial) return [];
  const recordOf = new Map(records.map((r) => [`${r.kind}|${r.trialEndsAt}`, r]));
  const entries = [{ key: 'start', at: trial.startedAt, title: 'Trial started', detail: `to end ${trial.endsAt.slice(0, 10)}` }];
  trial.extensions.forEach((e, i) => entries.push({ key: `extension-${i}`, at: e.at, title: `Extended by ${e.days} days`, detail: `by ${e.by}` }));
  for (const n of trial.notifications) {
    entries.push({ key: `notice-${n.kind}-${n.trialEndsAt}`, at: n.at, title: noticeTitle(n.kind), detail: delivery(recordOf.get(`${n.kind}|${n.trialEndsAt}`)) });
  }
  if (trial.paymentMethod) {
    const last4 = trial.paymentMethod.last4 ? ` ending ${trial.paymentMethod.last4}` : '';
    entries.push({ key: 'paid', at: organisation?.statusChangedAt ?? trial.endsAt, title: 'Converted to paid', detail: `${trial.paymentMethod.type}${last4}` });
  }
  if (trial.status === 'cancelled') {
    entries.push({ key: 'cancelled', at: organisation?.statusChangedAt ?? trial.endsAt, title: 'Cancelled', detail: trial.cancelReason ?? '' });
  }
  // The expiry is the trial's end, shown once below.
  if (trial.nextNotice && trial.nextNotice.kind !== 'expired') {
    entries.push({ key: 'next', at: trial.nextNotice.at, title: `Next: ${noticeTitle(trial.nextNotice.kind).replace(' sent', '')}`, detail: 'due', future: true });
  }
  if (trial.status === 'trial') {
    entries.push({ key: 'end', at: trial.endsAt, title: 'Trial ends', detail: '', future: Date.parse(trial.endsAt) > now });
  }
  return entries.sort((a, b) => a.at.localeCompare(b.at));
}
