-- Text normalization macros shared by the rule labeler and the mining queries.
-- rd_straight(text): curly quotes and primes made straight.
-- rd_squash(text): tabs, newlines and no-break spaces made spaces, runs of spaces
--   collapsed to one (see rd_collapse).
-- rd_collapse(text): runs of spaces collapsed to one, when there are any: plain
--   replace for runs of up to 16 (far faster than a global regex), a regex for the
--   rare longer run left after that (rd_collapse_rest), so normalizing is idempotent.
-- rd_normalize(text): lower case, quotes straight, white space made spaces and runs
--   of spaces collapsed, leading markdown and punctuation (#, *, >, -, quotes, emoji
--   ...) stripped, trailing space trimmed: rd_tidy(rd_unify(lower(text))). Letters and
--   digits are kept, so a response opening with "1." keeps it.
-- rd_unify(lowered): quotes straight and tabs, newlines and no-break spaces made spaces,
--   by a chain of replace() calls run only on texts that contain one of them (contains()
--   is several times cheaper than a replace() that finds nothing; translate() and a
--   global regexp_replace are each slower than the chain, and so is a regex test).
-- rd_tidy(unified): runs of spaces collapsed, leading non-alphanumerics stripped,
--   trailing space trimmed.
-- rd_phrase(text): a matched phrase as the lexicon writes it: lower case, straight
--   apostrophes, every other run of non-alphanumerics one space.
-- rd_words(text): how many white-space separated words text has: the spaces of the
--   squashed, trimmed text plus one (no list is built); rd_count_words(squashed) counts
--   them in text already squashed and trimmed.
-- rd_opening(normalized, k): the first k words (space-separated) of normalized text.
CREATE OR REPLACE MACRO rd_straight(text) AS
    replace(replace(replace(replace(replace(replace(text,
        '’', ''''), '‘', ''''), '“', '"'), '”', '"'), '′', ''''), '″', '"');

CREATE OR REPLACE MACRO rd_collapse_rest(text) AS
    CASE WHEN contains(text, '  ') THEN regexp_replace(text, '  +', ' ', 'g') ELSE text END;

CREATE OR REPLACE MACRO rd_collapse(text) AS
    CASE WHEN contains(text, '  ')
         THEN rd_collapse_rest(replace(replace(replace(replace(text, '  ', ' '), '  ', ' '), '  ', ' '), '  ', ' '))
         ELSE text END;

CREATE OR REPLACE MACRO rd_squash(text) AS
    rd_collapse(replace(replace(replace(replace(text, chr(10), ' '), chr(13), ' '), chr(9), ' '), chr(160), ' '));

CREATE OR REPLACE MACRO rd_unify(lowered) AS
    CASE WHEN contains(lowered, '’') OR contains(lowered, '‘') OR contains(lowered, '“') OR contains(lowered, '”')
           OR contains(lowered, '′') OR contains(lowered, '″') OR contains(lowered, chr(10))
           OR contains(lowered, chr(13)) OR contains(lowered, chr(9)) OR contains(lowered, chr(160))
         THEN replace(replace(replace(replace(rd_straight(lowered), chr(10), ' '), chr(13), ' '), chr(9), ' '), chr(160), ' ')
         ELSE lowered END;

CREATE OR REPLACE MACRO rd_tidy(unified) AS
    rtrim(regexp_replace(rd_collapse(unified), '^[^\p{L}\p{N}]+', ''));

CREATE OR REPLACE MACRO rd_normalize(text) AS
    rd_tidy(rd_unify(lower(text)));

CREATE OR REPLACE MACRO rd_phrase(text) AS
    trim(regexp_replace(replace(lower(text), '’', ''''), '[^a-z0-9'']+', ' ', 'g'));

CREATE OR REPLACE MACRO rd_opening(normalized, k) AS
    array_to_string(string_split(normalized, ' ')[1:k], ' ');

CREATE OR REPLACE MACRO rd_count_words(squashed) AS
    CASE WHEN squashed = '' THEN 0 ELSE length(squashed) - length(replace(squashed, ' ', '')) + 1 END;

CREATE OR REPLACE MACRO rd_words(text) AS
    rd_count_words(trim(rd_squash(text)));
