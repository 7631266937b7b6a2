#!/usr/bin/env bash
# A pool of finetunes as a user would hold it: each built-in task finetuned from minilm and saved as an ordinary
# checkpoint folder (POOL/TASK/model, with its metrics.json beside it) by `basefuse finetune --save`, with the
# source settings of configs/paper-cpu.yaml (1,000 examples, 2 epochs). Then configs/recycle-cpu.yaml ranks,
# selects and evaluates them: `bash scripts/recycle_pool.sh && basefuse experiment
# src/basefuse/configs/recycle-cpu.yaml --out runs/recycle-cpu`. A folder already holding a model is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
POOL="${POOL:-runs/recycle-pool}"
for task in rotten_tomatoes vader_amazon vader_nyt crowdflower_twitter_sentiment vader_tweets trump_tweet_device \
            trec_coarse sms_spam bbc_news; do
  if [ -f "$POOL/$task/model/config.json" ]; then
    echo "pool: $POOL/$task/model exists, kept"
    continue
  fi
  .venv/bin/basefuse finetune --model minilm --task "$task" --save --out "$POOL/$task" --seed 0 \
    --max-train 1000 --epochs 2 --min-steps 0 --lr 0.0002 --batch-size 32 --max-length 32 --warmup-ratio 0.06 \
    --max-grad-norm 1.0 --patience 3 --max-eval 200 --max-test 200
done
