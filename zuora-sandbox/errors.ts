import { randomBytes } from 'node:crypto';

/**
 * Zuora's v1 error codes are eight digits: a six-digit resource code and a two-digit category.
 * The sandbox does not know Zuora's per-field resource codes, so it uses 500000 ("unknown
 * object"), which Zuora itself returns when it cannot tell; the category is the part clients act
 * on. 90000011 is Zuora's documented code for bad credentials.
 */
export const ZuoraCode = {
  authenticationFailed: 90000011,
  invalidValue: 50000020,
  unknownField: 50000021,
  missingRequiredField: 50000022,
  ruleRestriction: 50000030,
  notFound: 50000040,
  unsupportedRequest: 50000045,
  lockingContention: 50000050,
  internalError: 50000060,
  requestExceededLimit: 50000070,
  malformedRequest: 50000090,
} as const;

export type ZuoraCode = (typeof ZuoraCode)[keyof typeof ZuoraCode];

export interface ZuoraReason {
  code: number;
  message: string;
}

/** Zuora's v1 failure body: `{ success: false, processId, reasons: [{ code, message }] }`. */
export interface ZuoraFailureBody {
  success: false;
  processId: string;
  reasons: ZuoraReason[];
}

/** Zuora's internal process id, 16 upper-case hex characters, quoted to support. */
export function newProcessId(): string {
  return randomBytes(8).toString('hex').toUpperCase();
}

export function zuoraFailure(...reasons: ZuoraReason[]): ZuoraFailureBody {
  return { success: false, processId: newProcessId(), reasons };
}

/**
 * A failure a v1 handler throws; the error handler turns it into Zuora's body with this HTTP
 * status. Zuora answers most business errors with HTTP 200 and `success: false`, so callers must
 * pick the status deliberately.
 */
export class ZuoraError extends Error {
  constructor(
    readonly httpStatus: number,
    readonly code: ZuoraCode,
    message: string,
  ) {
    super(message);
    this.name = 'ZuoraError';
  }

  body(): ZuoraFailureBody {
    return zuoraFailure({ code: this.code, message: this.message });
  }
}

/** The CRUD (`/v1/object/*`) failure body: PascalCase, string codes such as `INVALID_VALUE`. */
export interface CrudFailureBody {
  Success: false;
  Errors: Array<{ Code: CrudCode; Message: string }>;
}

export type CrudCode = 'INVALID_VALUE' | 'MISSING_REQUIRED_VALUE' | 'DUPLICATE_VALUE' | 'INVALID_FIELD';

export function crudFailure(code: CrudCode, message: string): CrudFailureBody {
  return { Success: false, Errors: [{ Code: code, Message: message }] };
}

/** A validation failure from the route schema, as TypeBox's compiler reports it. */
export interface SchemaIssue {
  instancePath: string;
  message: string;
}

/** `/billToContact/firstName` → `billToContact.firstName`. */
export function fieldOf(issue: SchemaIssue): string {
  return issue.instancePath.replace(/^\//, '').replaceAll('/', '.') || 'body';
}

export function isMissing(issue: SchemaIssue): boolean {
  return issue.message === 'Expected required property';
}

/** One issue per field: TypeBox reports a missing property both as missing and as wrongly typed. */
export function firstIssuePerField(issues: readonly SchemaIssue[]): SchemaIssue[] {
  const seen = new Set<string>();
  return issues.filter((issue) => {
    const field = fieldOf(issue);
    if (seen.has(field)) return false;
    seen.add(field);
    return true;
  });
}

/** Schema issues as Zuora v1 reasons, each naming its field. */
export function reasonsFromSchema(issues: readonly SchemaIssue[]): ZuoraReason[] {
  return firstIssuePerField(issues).map((issue) =>
    isMissing(issue)
      ? { code: ZuoraCode.missingRequiredField, message: `'${fieldOf(issue)}' may not be null` }
      : { code: ZuoraCode.invalidValue, message: `'${fieldOf(issue)}' is invalid: ${issue.message}` },
  );
}
