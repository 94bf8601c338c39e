import { Type, type Static } from '@sinclair/typebox';

/**
 * Request schemas of the sandbox's Zuora routes, with Zuora's documented limits. They are checked
 * by TypeBox's compiler (no type coercion), and a failure is reported in Zuora's shape by the
 * route, since Zuora answers some of them with HTTP 200.
 */

const Text = (maxLength: number) => Type.String({ maxLength });

export const ContactBody = Type.Object({
  firstName: Type.String({ minLength: 1, maxLength: 100 }),
  lastName: Type.String({ minLength: 1, maxLength: 100 }),
  workEmail: Type.Optional(Text(80)),
  personalEmail: Type.Optional(Text(80)),
  workPhone: Type.Optional(Text(40)),
  address1: Type.Optional(Text(255)),
  address2: Type.Optional(Text(255)),
  city: Type.Optional(Text(40)),
  state: Type.Optional(Text(40)),
  country: Type.Optional(Text(64)),
  zipCode: Type.Optional(Text(20)),
});
export type ContactBody = Static<typeof ContactBody>;

/** `POST /v1/accounts`. Fields Zuora knows but the sandbox does not model are accepted and ignored. */
export const CreateAccountBody = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 255 }),
  currency: Type.String({ pattern: '^[A-Z]{3}$', description: 'ISO 4217 code, e.g. USD' }),
  /** 1–31, or 0 for Zuora's "auto-set from the first subscription". */
  billCycleDay: Type.Integer({ minimum: 0, maximum: 31 }),
  billToContact: ContactBody,
  soldToContact: Type.Optional(ContactBody),
  accountNumber: Type.Optional(Type.String({ minLength: 1, maxLength: 50 })),
  autoPay: Type.Optional(Type.Boolean()),
  paymentTerm: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  batch: Type.Optional(Type.String({ minLength: 1, maxLength: 50 })),
  notes: Type.Optional(Text(65535)),
  crmId: Type.Optional(Text(100)),
  paymentMethod: Type.Optional(Type.Object({ type: Type.String({ minLength: 1, maxLength: 50 }) })),
});
export type CreateAccountBody = Static<typeof CreateAccountBody>;

export const AccountKeyParams = Type.Object({ accountKey: Type.String({ minLength: 1 }) });
export type AccountKeyParams = Static<typeof AccountKeyParams>;

export const ImportIdParams = Type.Object({ importId: Type.String({ minLength: 1 }) });
export type ImportIdParams = Static<typeof ImportIdParams>;

/** Zuora's paging of `GET /v1/usage/accounts/{account-key}`: 20 a page unless asked, 40 at most. */
export const UsagePageQuery = Type.Object({
  page: Type.Optional(Type.Integer({ minimum: 1, default: 1 })),
  pageSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 40, default: 20 })),
});
export type UsagePageQuery = Static<typeof UsagePageQuery>;

/**
 * `POST /v1/object/usage` (CRUD, PascalCase). `Quantity` is checked by the route, not here: it
 * may be a JSON number or a decimal string, and must stay exact either way.
 */
export const CreateUsageObjectBody = Type.Object({
  AccountId: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
  AccountNumber: Type.Optional(Type.String({ minLength: 1, maxLength: 50 })),
  UOM: Type.String({ minLength: 1 }),
  Quantity: Type.Unknown(),
  StartDateTime: Type.String({ minLength: 1, maxLength: 29 }),
  EndDateTime: Type.Optional(Type.String({ minLength: 1, maxLength: 29 })),
  SubscriptionNumber: Type.Optional(Type.String({ maxLength: 100 })),
  ChargeNumber: Type.Optional(Type.String({ maxLength: 50 })),
  Description: Type.Optional(Type.String({ maxLength: 200 })),
  UniqueKey: Type.Optional(Type.String({ minLength: 1, maxLength: 50 })),
});
export type CreateUsageObjectBody = Static<typeof CreateUsageObjectBody>;
