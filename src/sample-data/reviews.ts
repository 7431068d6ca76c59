/**
 * Synthetic fashion-retail reviews in Brazilian Portuguese.
 *
 * - SKUs: max(200, min(5000, N / 15)) of them, popularity Zipf-like (exponent 0.8), each one
 *   product type and colour; 80% good products, 15% so-so, 5% bad, which shifts their ratings.
 * - Ratings skew to 4-5 as in real retail (about 54% 5, 22% 4, 10% 3, 6% 2, 8% 1).
 * - Text: an optional neutral opening, then clauses whose sentiment follows the rating (praise
 *   for 5; praise and a mild or real complaint for 4; lukewarm with some praise for 3;
 *   complaints, sometimes with some praise, for 1-2), size remarks at
 *   every rating, a closing, emoji, and noise: typos, dropped accents, elongations ("lindaaaa"),
 *   shouting, runs of "!". 9% of reviews have text of the mirrored rating (6 - r): people who
 *   click the wrong star. So a bag-of-words model does clearly better than chance, never 100%.
 * - Time: N reviews spread over `days` days from `start` with a daily rhythm (Brazil, UTC-3: few
 *   at night, most in the evening), in review_id order; `created` (ingestion) is 2 s plus an
 *   exponential delay of mean 1 minute (at most 20 minutes) after event_timestamp.
 */
import { DAY_MS } from '../core/time.js';
import {
  BUT_THEN_COMPLAINT,
  BUT_THEN_PRAISE,
  CLOSINGS_NEGATIVE,
  CLOSINGS_NEUTRAL,
  CLOSINGS_POSITIVE,
  CLOTHING_SIZES,
  COLOURS,
  EMOJI_NEGATIVE,
  EMOJI_NEUTRAL,
  EMOJI_POSITIVE,
  FIT_ACCESSORY,
  FIT_CLOTHING,
  FIT_SHOE,
  MILD_NEGATIVE,
  MILD_POSITIVE,
  NEGATIVE,
  NEUTRAL,
  OCCASIONS,
  OPENINGS,
  PEOPLE,
  POSITIVE,
  PRODUCT_TYPES,
  type ProductType,
} from './portuguese.js';
import { Random, WeightedPicker } from './random.js';

export interface ReviewOptions {
  seed: number;
  /** Number of reviews. */
  count: number;
  /** Epoch ms of the first day. */
  start: number;
  days: number;
}

export interface ReviewRow {
  review_id: string;
  sku: string;
  customer_id: string;
  text: string;
  rating: number;
  /** Epoch ms. */
  event_timestamp: number;
  /** Epoch ms, >= event_timestamp + 2 s. */
  created: number;
}

/** Share of reviews whose text was written for the mirrored rating. */
const MIRRORED_TEXT = 0.09;

const RATINGS_BY_QUALITY: readonly (readonly number[])[] = [
  [0.05, 0.04, 0.08, 0.22, 0.61], // good
  [0.15, 0.12, 0.2, 0.25, 0.28], // so-so
  [0.4, 0.22, 0.16, 0.12, 0.1], // bad
];

interface Sku {
  id: string;
  product: ProductType;
  colour: string;
  ratings: WeightedPicker;
}

/** Yields `count` reviews in time order; deterministic in (seed, count, start, days). */
export function* generateReviews(options: ReviewOptions): Generator<ReviewRow> {
  const { count, start, days } = options;
  const catalogue = new Random(options.seed, 'reviews/catalogue');
  const rng = new Random(options.seed, 'reviews/rows');
  const skus = makeCatalogue(catalogue, Math.max(200, Math.min(5000, Math.round(count / 15))));
  const popularity = new WeightedPicker(skus.map((_, rank) => 1 / (rank + 1) ** 0.8));
  const customers = Math.max(1000, Math.round(count * 0.7));
  const loyal = Math.max(10, Math.round(customers * 0.03));
  const clock = new ReviewClock(start, days);

  for (let i = 0; i < count; i++) {
    const sku = skus[popularity.pick(rng)]!;
    const rating = sku.ratings.pick(rng) + 1;
    const customer = rng.chance(0.25) ? rng.int(loyal) : rng.int(customers);
    const event = clock.at((i + rng.next()) / count);
    const delay = Math.min(20 * 60_000, 2000 + Math.floor(rng.exponential(60_000)));
    yield {
      review_id: `r${String(i + 1).padStart(7, '0')}`,
      sku: sku.id,
      customer_id: `C${String(customer + 1).padStart(8, '0')}`,
      text: reviewText(rng, sku, rng.chance(MIRRORED_TEXT) ? 6 - rating : rating),
      rating,
      event_timestamp: event,
      created: event + delay,
    };
  }
}

function makeCatalogue(rng: Random, n: number): Sku[] {
  const used = new Set<number>();
  const quality = RATINGS_BY_QUALITY.map((weights) => new WeightedPicker(weights));
  const skus: Sku[] = [];
  while (skus.length < n) {
    const number = rng.between(1, 450_000);
    if (used.has(number)) continue;
    used.add(number);
    const q = rng.next();
    skus.push({
      id: `SKU-${String(number).padStart(6, '0')}`,
      product: rng.pick(PRODUCT_TYPES),
      colour: rng.pick(COLOURS),
      ratings: quality[q < 0.8 ? 0 : q < 0.95 ? 1 : 2]!,
    });
  }
  return skus;
}

/** Maps a fraction of all reviews to an instant, following reviews' hourly rhythm; monotone. */
class ReviewClock {
  private readonly cumulative: Float64Array;
  private hour = 0;

  constructor(
    private readonly start: number,
    days: number,
  ) {
    const hours = Math.max(1, Math.round(days * 24));
    this.cumulative = new Float64Array(hours);
    let sum = 0;
    for (let h = 0; h < hours; h++) {
      const at = new Date(start + h * 3_600_000 - 3 * 3_600_000); // Brazil local time
      const local = at.getUTCHours();
      const weekend = at.getUTCDay() === 0 || at.getUTCDay() === 6;
      sum += HOURLY[local]! * (weekend ? 1.15 : 1);
      this.cumulative[h] = sum;
    }
  }

  /** The instant (epoch ms) of a fraction in [0, 1); called with increasing fractions. */
  at(fraction: number): number {
    const c = this.cumulative;
    const target = fraction * c[c.length - 1]!;
    while (this.hour < c.length - 1 && c[this.hour]! <= target) this.hour++;
    const before = this.hour === 0 ? 0 : c[this.hour - 1]!;
    const within = (target - before) / (c[this.hour]! - before);
    return this.start + Math.floor((this.hour + Math.min(within, 0.999999)) * 3_600_000);
  }
}

/** Relative review volume by local hour: quiet at night, busiest in the evening. */
const HOURLY = [0.5, 0.3, 0.2, 0.15, 0.15, 0.2, 0.4, 0.7, 1, 1.1, 1.2, 1.2, 1.3, 1.2, 1.1, 1.1, 1.2, 1.3, 1.5, 1.7, 1.9, 1.9, 1.5, 0.9];

// ---------------------------------------------------------------------------------------------
// text

interface Context {
  rng: Random;
  sku: Sku;
  size: number;
}

function reviewText(rng: Random, sku: Sku, textRating: number): string {
  const ctx: Context = { rng, sku, size: rng.between(33, 41) };
  const good: string[] = [];
  const bad: string[] = [];
  switch (textRating) {
    case 5:
      good.push(...distinct(rng, POSITIVE, rng.between(1, 3)));
      break;
    case 4:
      good.push(...distinct(rng, POSITIVE, rng.between(1, 2)));
      if (rng.chance(0.45)) bad.push(rng.pick(MILD_NEGATIVE));
      else if (rng.chance(0.2)) bad.push(rng.pick(NEGATIVE)); // four stars despite a real complaint
      break;
    case 3:
      good.push(rng.chance(0.35) ? rng.pick(POSITIVE) : rng.pick(MILD_POSITIVE));
      bad.push(...distinct(rng, NEUTRAL, rng.between(1, 2)));
      if (rng.chance(0.4)) bad.push(rng.pick(MILD_NEGATIVE));
      break;
    case 2:
      bad.push(...distinct(rng, NEGATIVE, rng.between(1, 2)));
      if (rng.chance(0.2)) good.push(rng.pick(POSITIVE));
      else if (rng.chance(0.4)) good.push(rng.pick(MILD_POSITIVE));
      break;
    default:
      bad.push(...distinct(rng, NEGATIVE, rng.between(1, 3)));
  }
  // Praise first in the better reviews ("linda, mas..."), complaints first in the worse ones.
  const first = textRating >= 3 ? good : bad;
  const second = textRating >= 3 ? bad : good;
  const clauses = [...first];
  if (second.length) {
    const joined = first.length ? `${rng.pick(textRating >= 3 ? BUT_THEN_COMPLAINT : BUT_THEN_PRAISE)} ${second[0]}` : second[0]!;
    clauses.push(joined, ...second.slice(1));
  }
  if (rng.chance(0.3)) {
    const fit = sku.product.kind === 'shoe' ? FIT_SHOE : sku.product.kind === 'clothing' ? FIT_CLOTHING : FIT_ACCESSORY;
    clauses.splice(rng.int(clauses.length + 1), 0, rng.pick(fit));
  }
  if (rng.chance(0.6)) clauses.unshift(rng.pick(OPENINGS));

  for (let i = 0; i < clauses.length; i++) clauses[i] = fill(clauses[i]!, ctx);
  let text = joinClauses(rng, clauses);
  text += ending(rng, textRating);
  return addNoise(rng, text, textRating);
}

function distinct(rng: Random, items: readonly string[], n: number): string[] {
  const out: string[] = [];
  while (out.length < n) {
    const item = rng.pick(items);
    if (!out.includes(item)) out.push(item);
  }
  return out;
}

function joinClauses(rng: Random, clauses: string[]): string {
  let text = clauses[0] ?? '';
  for (let i = 1; i < clauses.length; i++) {
    const r = rng.next();
    const contrast = startsWithBut(clauses[i]!); // no "e mas"
    if (r < 0.6) text += `, ${clauses[i]}`;
    else if (r < 0.75 && !contrast) text += ` e ${clauses[i]}`;
    else text += `. ${capitalise(clauses[i]!)}`;
  }
  return text;
}

function startsWithBut(clause: string): boolean {
  for (const but of BUT_THEN_COMPLAINT) if (clause.startsWith(but) && clause.charCodeAt(but.length) === 0x20) return true;
  for (const but of BUT_THEN_PRAISE) if (clause.startsWith(but) && clause.charCodeAt(but.length) === 0x20) return true;
  return false;
}

function ending(rng: Random, textRating: number): string {
  const extreme = textRating === 1 || textRating === 5;
  const bangs = rng.between(0, 4);
  let out = extreme ? (bangs > 0 && rng.chance(0.3) ? ' ' : '') + '!'.repeat(bangs) : rng.chance(0.7) ? '.' : '';
  const closings = textRating >= 4 ? CLOSINGS_POSITIVE : textRating <= 2 ? CLOSINGS_NEGATIVE : CLOSINGS_NEUTRAL;
  if (rng.chance(textRating === 3 ? 0.2 : 0.45)) out += ` ${rng.pick(closings)}`;
  if (rng.chance(0.12)) {
    const emoji = textRating >= 4 ? EMOJI_POSITIVE : textRating <= 2 ? EMOJI_NEGATIVE : EMOJI_NEUTRAL;
    out += ` ${rng.pick(emoji).repeat(rng.between(1, 3))}`;
  }
  return out;
}

/** Replaces the {placeholders} of a phrase (a plain loop: this runs for every clause of a million reviews). */
function fill(template: string, ctx: Context): string {
  let open = template.indexOf('{');
  if (open < 0) return template;
  let out = '';
  let from = 0;
  while (open >= 0) {
    const close = template.indexOf('}', open);
    out += template.slice(from, open);
    const value = placeholder(template.slice(open + 1, close), ctx);
    out += value.includes('{') ? fill(value, ctx) : value; // a colour like 'pret{o}' brings its own
    from = close + 1;
    open = template.indexOf('{', from);
  }
  return out + template.slice(from);
}

function placeholder(name: string, ctx: Context): string {
  const { rng, sku } = ctx;
  const f = sku.product.gender === 'f';
  switch (name) {
    case 'o':
    case 'art':
      return f ? 'a' : 'o';
    case 'um':
      return f ? 'uma' : 'um';
    case 'esse':
      return f ? 'essa' : 'esse';
    case 'ele':
      return f ? 'ela' : 'ele';
    case 'P':
      return sku.product.noun;
    case 'cor':
      return sku.colour;
    case 'N':
      return String(ctx.size);
    case 'N1':
      return String(ctx.size + 1);
    case 'tam':
      return rng.pick(CLOTHING_SIZES);
    case 'ocasiao':
      return rng.pick(OCCASIONS);
    case 'pessoa':
      return rng.pick(PEOPLE);
    case 'dias':
      return String(rng.between(2, 25));
    default:
      throw new Error(`sample reviews: unknown placeholder {${name}}`);
  }
}

const capitalise = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
const stripAccents = (s: string): string => s.normalize('NFD').replace(/[\u0300-\u036f]/g, '').normalize('NFC');
const VOWELS = 'aeiou';

const ELONGATABLE = /^[a-záéíóúâêôãõç]{3,}$/i;

/** What people do to text: dropped accents, typos, elongations, shouting, lower-case starts. */
function addNoise(rng: Random, text: string, textRating: number): string {
  const words = text.split(' ');
  if (rng.chance(0.35)) {
    for (let i = 0; i < words.length; i++) if (words[i]!.length >= 4 && rng.chance(0.03)) words[i] = typo(rng, words[i]!);
  }
  if (rng.chance(0.2)) {
    const candidates: number[] = [];
    for (let i = 0; i < words.length; i++) if (ELONGATABLE.test(words[i]!)) candidates.push(i);
    if (candidates.length) {
      const i = rng.pick(candidates);
      words[i] = elongate(rng, words[i]!);
    }
  }
  if (rng.chance(0.05)) {
    const i = rng.int(words.length);
    words[i] = words[i]!.toUpperCase();
  }
  let out = words.join(' ');
  if (rng.chance(0.2)) out = stripAccents(out);
  if (rng.chance(textRating <= 2 ? 0.08 : 0.02)) out = out.toUpperCase();
  else if (rng.chance(0.25)) out = out.charAt(0).toLowerCase() + out.slice(1);
  else out = capitalise(out);
  return out;
}

function typo(rng: Random, word: string): string {
  const i = rng.between(1, word.length - 2);
  switch (rng.int(3)) {
    case 0:
      return word.slice(0, i) + word[i + 1] + word[i] + word.slice(i + 2); // swapped letters
    case 1:
      return word.slice(0, i) + word.slice(i + 1); // a dropped letter
    default:
      return word.slice(0, i) + word[i] + word.slice(i); // a doubled letter
  }
}

/** "linda" -> "lindaaaa", "amei" -> "ameeeei": one of the last two vowels, 3 to 6 times. */
function elongate(rng: Random, word: string): string {
  const vowels: number[] = [];
  for (let i = 0; i < word.length; i++) if (VOWELS.includes(word[i]!.toLowerCase())) vowels.push(i);
  if (!vowels.length) return word;
  const i = vowels[Math.max(0, vowels.length - 1 - rng.int(2))]!;
  return word.slice(0, i) + word[i]!.repeat(rng.between(3, 6)) + word.slice(i + 1);
}
