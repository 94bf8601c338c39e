import { BigQuery } from '@google-cloud/bigquery';
import { PassThroughClient } from 'google-auth-library';

/**
 * The official client, pointed at the emulator when an endpoint is configured (no credentials
 * there), or at BigQuery itself with Application Default Credentials.
 */
export function createBigQuery(opts: { projectId: string; apiEndpoint: string }): BigQuery {
  if (opts.apiEndpoint === '') return new BigQuery({ projectId: opts.projectId });
  return new BigQuery({
    projectId: opts.projectId,
    apiEndpoint: opts.apiEndpoint,
    authClient: new PassThroughClient() as never,
  });
}
