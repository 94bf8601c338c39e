-- What registration was told about the trial, kept so a trial the hourly sweep (re)starts has the
-- same contact email and length as the one registration started.
ALTER TABLE organisations ADD COLUMN contact_email text;
ALTER TABLE organisations ADD COLUMN trial_days integer CHECK (trial_days BETWEEN 1 AND 365);
