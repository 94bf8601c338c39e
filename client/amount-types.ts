/**
 * The amount types Tally knows out of the box, under the names the Go client exported
 * (billing.ContainerSeconds, ...). The set is server configuration, so the type stays open:
 * any other string compiles, and the ingest API answers `invalid` for one it does not know.
 */
export const ContainerSeconds = 'container-seconds';
export const NodeSeconds = 'node-seconds';
export const WeaveNetSeconds = 'weavenet-seconds';
export const Samples = 'samples';

export type KnownAmountType = typeof ContainerSeconds | typeof NodeSeconds | typeof WeaveNetSeconds | typeof Samples;
/** `string & {}` keeps editor completion for the known names while accepting any other. */
export type AmountType = KnownAmountType | (string & {});
/** Amount type → non-negative integer quantity. */
export type Amounts = Partial<Record<AmountType, number>>;
