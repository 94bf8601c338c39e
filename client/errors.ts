/**
 * What a producer can get wrong when calling the client: a bad argument, a bad option, or a call
 * after close(). Transport trouble is never thrown to the caller; it is retried, counted and logged.
 */
export type BillingClientErrorCode = 'INVALID_ARGUMENT' | 'INVALID_OPTION' | 'CLOSED';

export class BillingClientError extends Error {
  override readonly name = 'BillingClientError';
  constructor(
    readonly code: BillingClientErrorCode,
    message: string,
    /** The argument or option at fault (`amounts.container-seconds`, `maxBatchEvents`), when there is one. */
    readonly argument?: string,
  ) {
    super(message);
  }
}
