/**
 * E-commerce reviews: a fashion retailer classifies Portuguese review text (positive when the
 * rating is 4 or more) from word-frequency vectors. `larder sample-data` writes data/reviews.parquet.
 */
import { entity, featureService, featureView, fileSource, postgresSource, sparse, textStats, TEXT_STATS_SCHEMA, wordFrequency } from 'larder';

export const review = entity({ name: 'review', joinKeys: ['review_id'], valueType: 'string', description: 'One customer review' });
export const product = entity({ name: 'product', joinKeys: ['sku'], valueType: 'string', description: 'A stock-keeping unit' });

/** One row per review: review_id, sku, customer_id, text, rating (1-5, the label), event_timestamp, created. */
export const reviewsSource = fileSource({
  name: 'reviews_source',
  path: 'data/reviews.parquet',
  timestampField: 'event_timestamp',
  createdTimestampField: 'created',
});

/**
 * The same reviews in PostgreSQL, as `docker compose up` seeds them (docker/postgres-init.sql).
 * Read through a server-side cursor in batches. To backfill from the database instead of the
 * file, give it as `source` to the views below (connection: DATABASE_URL unless `connection` is set).
 */
export const reviewsTable = postgresSource({
  name: 'reviews_table',
  table: 'reviews',
  timestampField: 'event_timestamp',
  createdTimestampField: 'created',
});

/** ~62k hashed word buckets: no vocabulary to keep in sync, the same text gives the same vector anywhere. */
const wordCounts = wordFrequency({ buckets: 62_000 });

export const reviewText = featureView({
  name: 'review_text',
  entities: [review],
  source: reviewsSource,
  schema: { word_counts: sparse(wordCounts.size), ...TEXT_STATS_SCHEMA },
  // The same function runs in backfill, on pushed rows and on raw text sent to /predict.
  transform: (row) => ({ word_counts: wordCounts(row.text), ...textStats(row.text) }),
  description: 'Word frequencies and cheap text statistics of a review',
});

export const productReviews = featureView({
  name: 'product_reviews',
  entities: [product],
  source: reviewsSource,
  aggregations: [
    { column: 'rating', functions: ['count'], windows: ['30d'], name: 'review_count_30d' },
    { column: 'rating', functions: ['mean'], windows: ['30d'], name: 'mean_rating_30d' },
  ],
  description: 'How many reviews a product had, and their mean rating, over the last 30 days',
});

export const reviewSentiment = featureService({
  name: 'review_sentiment',
  features: [reviewText.select('word_counts', 'text_length', 'word_count', 'exclamation_count', 'uppercase_ratio', 'digit_count')],
  description: 'Features of the review sentiment model (Naive Bayes on word counts, a linear model beside it)',
});
