/** Zuora's error answer: `success: false` with reasons, sometimes under HTTP 200. */
export class ZuoraError extends Error {
  constructor(
    readonly status: number,
    readonly reasons: { code: string | number; message: string }[],
    /** Rate limits and server errors are worth a retry; everything else needs a person. */
    readonly retryable: boolean,
    /** Seconds Zuora asked us to wait (429 Retry-After). */
    readonly retryAfterSeconds?: number,
  ) {
    super(`Zuora answered ${status}: ${reasons.map((r) => `${r.code} ${r.message}`).join('; ') || 'no reason given'}`);
    this.name = 'ZuoraError';
  }
}

export interface ZuoraClientOptions {
  baseUrl: string;
  clientId: string;
  clientSecret: string;
}

export type ImportStatus = 'Pending' | 'Processing' | 'Completed' | 'Failed' | 'Canceled';

export interface ZuoraInvoice {
  id: string;
  invoiceNumber: string;
  invoiceDate: string;
  dueDate: string;
  amount: string | number;
  balance: string | number;
  status: string;
}

export interface ZuoraUsageRecord {
  uniqueKey?: string | null;
  accountNumber: string;
  quantity: number | string;
  unitOfMeasure: string;
  startDateTime: string;
}

/** A typed client for the parts of Zuora's REST API Tally uses; the same code talks to the sandbox and to a tenant. */
export class ZuoraClient {
  private token?: { value: string; expiresAt: number };

  constructor(private readonly opts: ZuoraClientOptions) {}

  /** `idempotencyKey` makes a retried creation (after a crash or a timeout) return the first account, not a second. */
  async createAccount(
    input: { name: string; currency: string; billCycleDay: number; contact: { firstName: string; lastName: string; workEmail?: string } },
    idempotencyKey: string,
  ): Promise<{ accountId: string; accountNumber: string }> {
    const body = await this.request<{ accountId: string; accountNumber: string }>('POST', '/v1/accounts', {
      idempotencyKey,
      json: {
        name: input.name,
        currency: input.currency,
        billCycleDay: input.billCycleDay,
        autoPay: false,
        billToContact: input.contact,
      },
    });
    return { accountId: body.accountId, accountNumber: body.accountNumber };
  }

  /** Zuora's "Create a payment method", made the account's default. The key makes a retry add it once. */
  async addPaymentMethod(accountKey: string, method: { type: string }, idempotencyKey: string): Promise<{ id: string }> {
    const body = await this.request<{ id: string }>('POST', '/v1/payment-methods', {
      idempotencyKey,
      json: { accountKey, type: method.type, makeDefault: true },
    });
    return { id: body.id };
  }

  async account(accountKey: string): Promise<{ accountNumber: string; defaultPaymentMethodId: string | null }> {
    const body = await this.request<{ basicInfo: { accountNumber: string }; billingAndPayment: { defaultPaymentMethodId: string | null } }>(
      'GET', `/v1/accounts/${encodeURIComponent(accountKey)}`,
    );
    return { accountNumber: body.basicInfo.accountNumber, defaultPaymentMethodId: body.billingAndPayment.defaultPaymentMethodId };
  }

  /** The account's invoices, newest first, as Zuora lists them. */
  async accountInvoices(accountKey: string): Promise<ZuoraInvoice[]> {
    const body = await this.request<{ invoices: ZuoraInvoice[] }>('GET', `/v1/transactions/invoices/accounts/${encodeURIComponent(accountKey)}`);
    return body.invoices;
  }

  /** Zuora's usage import: one CSV file; answers the import id to poll. */
  async importUsage(csv: string, fileName: string): Promise<{ importId: string; statusPath: string }> {
    const form = new FormData();
    form.append('file', new Blob([csv], { type: 'text/csv' }), fileName);
    const body = await this.request<{ checkImportStatus: string }>('POST', '/v1/usage', { form });
    const match = /\/v1\/usage\/([^/]+)\/status/.exec(body.checkImportStatus);
    if (!match?.[1]) throw new ZuoraError(200, [{ code: 'UNEXPECTED', message: `no import id in ${body.checkImportStatus}` }], false);
    return { importId: match[1], statusPath: body.checkImportStatus };
  }

  async importStatus(importId: string): Promise<{ status: ImportStatus; message?: string }> {
    const body = await this.request<{ importStatus: ImportStatus; message?: string }>('GET', `/v1/usage/${encodeURIComponent(importId)}/status`);
    return { status: body.importStatus, message: body.message };
  }

  /** Every usage record of an account, following Zuora's pages (at most 40 records each). */
  async accountUsage(accountKey: string): Promise<ZuoraUsageRecord[]> {
    const records: ZuoraUsageRecord[] = [];
    let path: string | undefined = `/v1/usage/accounts/${encodeURIComponent(accountKey)}?pageSize=40`;
    while (path) {
      const body: { usage: ZuoraUsageRecord[]; nextPage?: string } = await this.request('GET', path);
      records.push(...body.usage);
      path = body.nextPage ? new URL(body.nextPage, this.opts.baseUrl).pathname + new URL(body.nextPage, this.opts.baseUrl).search : undefined;
    }
    return records;
  }

  private async accessToken(): Promise<string> {
    // Refresh a minute early so a token never expires between our check and Zuora's.
    if (this.token && this.token.expiresAt - 60_000 > Date.now()) return this.token.value;
    const res = await fetch(new URL('/oauth/token', this.opts.baseUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: this.opts.clientId, client_secret: this.opts.clientSecret, grant_type: 'client_credentials' }),
    });
    const body = (await res.json().catch(() => ({}))) as { access_token?: string; expires_in?: number; reasons?: ZuoraError['reasons'] };
    if (!res.ok || !body.access_token) throw errorFrom(res, body);
    this.token = { value: body.access_token, expiresAt: Date.now() + (body.expires_in ?? 3600) * 1000 };
    return this.token.value;
  }

  private async request<T>(method: string, path: string, opts: { json?: unknown; form?: FormData; idempotencyKey?: string } = {}): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { authorization: `Bearer ${await this.accessToken()}`, accept: 'application/json' };
      if (opts.json !== undefined) headers['content-type'] = 'application/json';
      if (opts.idempotencyKey !== undefined) headers['idempotency-key'] = opts.idempotencyKey;
      const res = await fetch(new URL(path, this.opts.baseUrl), {
        method,
        headers,
        body: opts.form ?? (opts.json !== undefined ? JSON.stringify(opts.json) : undefined),
      });
      const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
      // An expired token is refreshed once; every other failure is the caller's (Temporal's) to retry.
      if (res.status === 401 && attempt === 0) {
        this.token = undefined;
        continue;
      }
      if (!res.ok || body.success === false || body.Success === false) throw errorFrom(res, body);
      return body as T;
    }
  }
}

function errorFrom(res: Response, body: { reasons?: ZuoraError['reasons'] }): ZuoraError {
  const retryAfter = Number(res.headers.get('retry-after'));
  return new ZuoraError(
    res.status,
    body.reasons ?? [],
    res.status === 429 || res.status >= 500,
    Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined,
  );
}
