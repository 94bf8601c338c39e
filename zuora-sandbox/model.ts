/**
 * What the sandbox stores, in Zuora's own vocabulary. Everything here is plain JSON so the whole
 * tenant can be written to one data file and read back after a restart.
 */

export interface Contact {
  id: string;
  firstName: string;
  lastName: string;
  workEmail?: string;
  personalEmail?: string;
  workPhone?: string;
  address1?: string;
  address2?: string;
  city?: string;
  state?: string;
  country?: string;
  zipCode?: string;
}

export interface PaymentMethod {
  id: string;
  type: string;
}

export interface Account {
  /** 32 hex characters, as Zuora's object ids. */
  id: string;
  /** `A00000001` unless the caller chose its own. */
  accountNumber: string;
  name: string;
  status: 'Active';
  currency: string;
  billCycleDay: number;
  autoPay: boolean;
  paymentTerm: string;
  batch: string;
  notes?: string;
  crmId?: string;
  billToContact: Contact;
  soldToContact: Contact;
  paymentMethod?: PaymentMethod;
  createdDate: string;
}

/** Zuora's documented usage record states; `Processed` needs a bill run, which the sandbox has not. */
export type UsageStatus = 'Importing' | 'Pending';

/** `Import` for rows of an uploaded file, `API` for records created one at a time. */
export type UsageSource = 'Import' | 'API';

export interface UsageRecord {
  id: string;
  accountId: string;
  accountNumber: string;
  unitOfMeasure: string;
  /** Exact decimal string, normalised (`"7.5"`, never `"7.50"` or a float). */
  quantity: string;
  /** `YYYY-MM-DD HH:mm:ss` in the tenant's zone, which for the sandbox is UTC. */
  startDateTime: string;
  endDateTime?: string;
  subscriptionNumber?: string;
  chargeNumber?: string;
  description?: string;
  uniqueKey?: string;
  sourceName: UsageSource;
  status: UsageStatus;
  submissionDateTime: string;
  /** The import that last wrote this record, and that file's name. */
  importId?: string;
  fileName?: string;
}

/** The fields a writer supplies; the sandbox adds ids, status and timestamps. */
export interface UsageWrite {
  account: Account;
  unitOfMeasure: string;
  quantity: string;
  startDateTime: string;
  endDateTime?: string;
  subscriptionNumber?: string;
  chargeNumber?: string;
  description?: string;
  uniqueKey?: string;
}

/** Zuora's documented import states; `Canceled` exists in Zuora but nothing in the sandbox cancels. */
export type ImportStatus = 'Pending' | 'Processing' | 'Completed' | 'Canceled' | 'Failed';

export interface UsageImport {
  id: string;
  fileName: string;
  /** Bytes received. */
  size: number;
  status: ImportStatus;
  /** Why the import failed, naming the row and the field. */
  message?: string;
  /** Data rows in the file (the header not counted); 0 until the file has been read. */
  rowCount: number;
  added: number;
  updated: number;
  ignored: number;
  submittedAt: string;
  updatedAt: string;
  /** The file's text, kept only until the import is finished so a restart can resume it. */
  csv?: string;
  /** Set while Processing when validation already failed: becomes `message` at the next step. */
  failure?: string;
  /** Records this import wrote, flipped from Importing to Pending when it completes. */
  recordIds?: string[];
}

/** A response kept for an Idempotency-Key, replayed to retries of the same request for 24 h. */
export interface IdempotentResponse {
  key: string;
  method: string;
  url: string;
  /** Hash of what the request asked for (JSON body, or the uploaded file's bytes). */
  fingerprint: string;
  statusCode: number;
  body: unknown;
  createdAt: number;
}

/** The data file's layout. `version` lets a later sandbox refuse a file it cannot read. */
export interface SandboxSnapshot {
  version: 1;
  nextAccountSequence: number;
  accounts: Account[];
  usage: UsageRecord[];
  imports: UsageImport[];
  idempotency: IdempotentResponse[];
  /** Absent in data files written before the sandbox had bill runs. */
  invoices?: Invoice[];
}

/** An invoice a sandbox bill run posted: one line per unit of measure of the period's usage. */
export interface Invoice {
  id: string;
  accountId: string;
  accountNumber: string;
  invoiceNumber: string;
  invoiceDate: string;
  dueDate: string;
  /** Exact decimal strings, as Zuora's amounts. */
  amount: string;
  balance: string;
  status: 'Posted';
  lines: { unitOfMeasure: string; quantity: string; unitPrice: string; amount: string; serviceStartDate: string; serviceEndDate: string }[];
}
