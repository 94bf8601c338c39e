import { randomUUID } from 'node:crypto';
import type {
  Account,
  IdempotentResponse,
  SandboxSnapshot,
  UsageImport,
  UsageRecord,
  UsageSource,
  UsageStatus,
  UsageWrite,
  PaymentMethod,
  Invoice,
} from './model.js';
import { readSnapshot, writeSnapshot } from './data-file.js';
import { zuoraDateTime } from './usage-values.js';

/** Zuora's object ids: 32 lower-case hex characters. */
export function newZuoraId(): string {
  // A UUID's 32 hex digits: random enough, and far cheaper than randomBytes for 100k-row imports.
  return randomUUID().replaceAll('-', '');
}

/** Zuora forgets an Idempotency-Key 24 hours after it was first used. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

export interface UsageOrigin {
  sourceName: UsageSource;
  status: UsageStatus;
  importId?: string;
  fileName?: string;
}

export interface UsageWriteOutcome {
  /** Records added or changed, in write order (an ignored row writes nothing). */
  recordIds: string[];
  added: number;
  updated: number;
  ignored: number;
}

export type NewAccount = Omit<Account, 'id' | 'accountNumber' | 'status' | 'createdDate'> & { accountNumber?: string };

function sameUsage(record: UsageRecord, write: UsageWrite): boolean {
  return (
    record.unitOfMeasure === write.unitOfMeasure &&
    record.quantity === write.quantity &&
    record.startDateTime === write.startDateTime &&
    record.endDateTime === write.endDateTime &&
    record.subscriptionNumber === write.subscriptionNumber &&
    record.chargeNumber === write.chargeNumber &&
    record.description === write.description
  );
}

function usageFields(write: UsageWrite) {
  return {
    accountId: write.account.id,
    accountNumber: write.account.accountNumber,
    unitOfMeasure: write.unitOfMeasure,
    quantity: write.quantity,
    startDateTime: write.startDateTime,
    endDateTime: write.endDateTime,
    subscriptionNumber: write.subscriptionNumber,
    chargeNumber: write.chargeNumber,
    description: write.description,
    uniqueKey: write.uniqueKey,
  };
}

/**
 * The sandbox tenant: accounts, usage records, usage imports and remembered idempotent responses.
 * With a data file, every change is written through (temporary file, then rename, so a crash never
 * leaves half a file) and the tenant survives restarts.
 */
export class SandboxState {
  private accounts = new Map<string, Account>();
  private accountsByNumber = new Map<string, Account>();
  private usage = new Map<string, UsageRecord>();
  /** UNIQUE_KEY → record id. A key belongs to the account that first used it. */
  private usageByUniqueKey = new Map<string, string>();
  private imports = new Map<string, UsageImport>();
  private idempotency = new Map<string, IdempotentResponse>();
  private nextAccountSequence = 1;
  private invoices = new Map<string, Invoice>();
  private batchDepth = 0;

  private constructor(private readonly dataFile?: string) {}

  static open(dataFile?: string): SandboxState {
    const state = new SandboxState(dataFile);
    const snapshot = dataFile ? readSnapshot(dataFile) : undefined;
    if (snapshot) state.restore(snapshot);
    return state;
  }

  /** Runs several changes with one write of the data file at the end. */
  batch<T>(change: () => T): T {
    this.batchDepth += 1;
    try {
      return change();
    } finally {
      this.batchDepth -= 1;
      this.persist();
    }
  }

  // Accounts

  createAccount(input: NewAccount, now = new Date()): Account {
    const accountNumber = input.accountNumber ?? this.nextAccountNumber();
    const account: Account = { ...input, id: newZuoraId(), accountNumber, status: 'Active', createdDate: now.toISOString() };
    this.accounts.set(account.id, account);
    this.accountsByNumber.set(account.accountNumber, account);
    this.persist();
    return account;
  }

  /** A new default payment method of the account (Zuora keeps the old ones; the sandbox the default). */
  setDefaultPaymentMethod(accountId: string, paymentMethod: PaymentMethod): void {
    const account = this.accounts.get(accountId);
    if (!account) return;
    account.paymentMethod = paymentMethod;
    this.persist();
  }

  /** By id or by account number, as Zuora's `{account-key}`. */
  findAccount(key: string): Account | undefined {
    return this.accounts.get(key) ?? this.accountsByNumber.get(key);
  }

  allAccounts(): Account[] {
    return [...this.accounts.values()];
  }

  findAccountByNumber(accountNumber: string): Account | undefined {
    return this.accountsByNumber.get(accountNumber);
  }

  private nextAccountNumber(): string {
    let number: string;
    do {
      number = `A${String(this.nextAccountSequence).padStart(8, '0')}`;
      this.nextAccountSequence += 1;
    } while (this.accountsByNumber.has(number));
    return number;
  }

  // Usage records

  /**
   * The first write whose UNIQUE_KEY already belongs to another account (stored, or earlier in
   * the same batch): Zuora rejects moving usage between accounts through its key.
   */
  findUniqueKeyConflict(writes: readonly UsageWrite[]): { index: number; message: string } | undefined {
    const owners = new Map<string, string>();
    for (const [index, write] of writes.entries()) {
      if (write.uniqueKey === undefined) continue;
      const storedId = this.usageByUniqueKey.get(write.uniqueKey);
      const owner = owners.get(write.uniqueKey) ?? (storedId ? this.usage.get(storedId)?.accountNumber : undefined);
      if (owner !== undefined && owner !== write.account.accountNumber) {
        return {
          index,
          message: `UNIQUE_KEY '${write.uniqueKey}' already belongs to account ${owner}, not ${write.account.accountNumber}`,
        };
      }
      owners.set(write.uniqueKey, write.account.accountNumber);
    }
    return undefined;
  }

  /**
   * Writes usage with Zuora's unique-key rules: a keyed record identical to the stored one is
   * ignored, a changed one updates the stored record in place, an unkeyed one is always added.
   * Callers check `findUniqueKeyConflict` first, so this cannot fail half-way.
   */
  writeUsage(writes: readonly UsageWrite[], origin: UsageOrigin, now = new Date()): UsageWriteOutcome {
    return this.batch(() => {
      const outcome: UsageWriteOutcome = { recordIds: [], added: 0, updated: 0, ignored: 0 };
      const submissionDateTime = zuoraDateTime(now);
      for (const write of writes) {
        const existingId = write.uniqueKey === undefined ? undefined : this.usageByUniqueKey.get(write.uniqueKey);
        const existing = existingId === undefined ? undefined : this.usage.get(existingId);
        if (existing && sameUsage(existing, write)) {
          outcome.ignored += 1;
          continue;
        }
        const record: UsageRecord = {
          ...usageFields(write),
          id: existing?.id ?? newZuoraId(),
          sourceName: origin.sourceName,
          status: origin.status,
          submissionDateTime,
          importId: origin.importId,
          fileName: origin.fileName,
        };
        this.usage.set(record.id, record);
        if (record.uniqueKey !== undefined) this.usageByUniqueKey.set(record.uniqueKey, record.id);
        if (existing) outcome.updated += 1;
        else outcome.added += 1;
        outcome.recordIds.push(record.id);
      }
      return outcome;
    });
  }

  findUsage(id: string): UsageRecord | undefined {
    return this.usage.get(id);
  }

  findUsageByUniqueKey(uniqueKey: string): UsageRecord | undefined {
    const id = this.usageByUniqueKey.get(uniqueKey);
    return id === undefined ? undefined : this.usage.get(id);
  }

  setUsageStatus(recordIds: readonly string[], status: UsageStatus): void {
    for (const id of recordIds) {
      const record = this.usage.get(id);
      if (record) record.status = status;
    }
    this.persist();
  }

  usageOfAccount(accountId: string): UsageRecord[] {
    return [...this.usage.values()].filter((record) => record.accountId === accountId);
  }

  allUsage(): UsageRecord[] {
    return [...this.usage.values()];
  }

  // Usage imports

  addImport(usageImport: UsageImport): void {
    this.imports.set(usageImport.id, usageImport);
    this.persist();
  }

  findImport(id: string): UsageImport | undefined {
    return this.imports.get(id);
  }

  updateImport(id: string, change: Partial<UsageImport>, now = new Date()): UsageImport | undefined {
    const usageImport = this.imports.get(id);
    if (!usageImport) return undefined;
    Object.assign(usageImport, change, { updatedAt: now.toISOString() });
    this.persist();
    return usageImport;
  }

  allImports(): UsageImport[] {
    return [...this.imports.values()];
  }

  // Idempotency keys

  findIdempotent(key: string, now = Date.now()): IdempotentResponse | undefined {
    const entry = this.idempotency.get(key);
    if (entry && now - entry.createdAt >= IDEMPOTENCY_TTL_MS) {
      this.idempotency.delete(key);
      return undefined;
    }
    return entry;
  }

  rememberIdempotent(entry: IdempotentResponse): void {
    this.idempotency.set(entry.key, entry);
    this.persist();
  }

  // The whole tenant

  reset(): void {
    this.accounts.clear();
    this.accountsByNumber.clear();
    this.usage.clear();
    this.usageByUniqueKey.clear();
    this.imports.clear();
    this.idempotency.clear();
    this.invoices.clear();
    this.nextAccountSequence = 1;
    this.persist();
  }

  snapshot(now = Date.now()): SandboxSnapshot {
    return {
      version: 1,
      nextAccountSequence: this.nextAccountSequence,
      accounts: [...this.accounts.values()],
      usage: [...this.usage.values()],
      imports: [...this.imports.values()],
      idempotency: [...this.idempotency.values()].filter((entry) => now - entry.createdAt < IDEMPOTENCY_TTL_MS),
      invoices: [...this.invoices.values()],
    };
  }

  private restore(snapshot: SandboxSnapshot): void {
    this.nextAccountSequence = snapshot.nextAccountSequence;
    for (const account of snapshot.accounts) {
      this.accounts.set(account.id, account);
      this.accountsByNumber.set(account.accountNumber, account);
    }
    for (const record of snapshot.usage) {
      this.usage.set(record.id, record);
      if (record.uniqueKey !== undefined) this.usageByUniqueKey.set(record.uniqueKey, record.id);
    }
    for (const usageImport of snapshot.imports) this.imports.set(usageImport.id, usageImport);
    for (const entry of snapshot.idempotency) this.idempotency.set(entry.key, entry);
    for (const invoice of snapshot.invoices ?? []) this.invoices.set(invoice.id, invoice);
  }

  // Invoices

  addInvoice(invoice: Invoice): void {
    this.invoices.set(invoice.id, invoice);
    this.persist();
  }

  invoicesOfAccount(accountId: string): Invoice[] {
    return [...this.invoices.values()].filter((i) => i.accountId === accountId).sort((a, b) => (a.invoiceDate < b.invoiceDate ? 1 : -1));
  }

  nextInvoiceNumber(): string {
    return `INV${String(this.invoices.size + 1).padStart(8, '0')}`;
  }

  private persist(): void {
    if (!this.dataFile || this.batchDepth > 0) return;
    writeSnapshot(this.dataFile, this.snapshot());
  }
}
