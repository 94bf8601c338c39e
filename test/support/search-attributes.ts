import type { Connection } from '@temporalio/client';
import { searchAttributes } from '../../devstack/temporal.js';

/** IndexedValueType of the Temporal API (@temporalio/proto is not a direct dependency). */
const indexedValueType = { Keyword: 2 } as const;

/**
 * Registers in a namespace the search attributes the dev server registers at start
 * (devstack/temporal.ts): for the time-skipping test server, and for namespaces a test creates.
 */
export async function registerSearchAttributes(connection: Pick<Connection, 'operatorService'>, namespace: string): Promise<void> {
  await connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(Object.entries(searchAttributes).map(([name, type]) => [name, indexedValueType[type]])),
  });
}
