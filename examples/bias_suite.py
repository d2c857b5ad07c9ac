# Databricks notebook source
# MAGIC %md
# MAGIC # Gender-bias suite for an Azure OpenAI deployment
# MAGIC
# MAGIC The lab's test (neutral and loaded prompts to `gpt-35-turbo`, answers compared), written as the
# MAGIC YAML cases in `../cases/` and run by pytest with **pytest-llmbias**: every answer and every verdict
# MAGIC comes back as a Spark DataFrame on this notebook's `spark`, is shown below, and is appended to a
# MAGIC results table that keeps every run.
# MAGIC
# MAGIC * Cluster: Databricks Runtime 15.4 LTS ML or newer (Python 3.11+); any access mode, serverless too.
# MAGIC * The Azure key lives in a secret scope: `databricks secrets create-scope bias-suite`, then
# MAGIC   `databricks secrets put-secret bias-suite azure-openai-key`.
# MAGIC * Scheduled as a job with the parameter `fail_job` = `yes`, a failed check fails the job.
# MAGIC
# MAGIC Locally (no Databricks): `python examples/local.py bias_suite.ipynb` writes this notebook for Jupyter, as examples/bias_suite.ipynb;
# MAGIC run it against the stand-in server (`python -m pytest_llmbias.standin`, then its three `export` lines).

# COMMAND ----------

# MAGIC %pip install pytest-llmbias

# COMMAND ----------

import os

ON_DATABRICKS = "DATABRICKS_RUNTIME_VERSION" in os.environ
if ON_DATABRICKS:
    # Your resource; the key is read from the secret scope by --llm-key-secret and never printed.
    os.environ.setdefault("AZURE_OPENAI_ENDPOINT", "https://aoai-databricks00000.openai.azure.com/")
    KEY = "--llm-key-secret bias-suite/azure-openai-key"
    RESULTS = "main.bias_suite"  # a Unity Catalog schema (catalog.schema) you can create tables in
    dbutils.widgets.dropdown("fail_job", "no", ["no", "yes"], "Fail when a check fails")  # noqa: F821
    RAISE = "--llm-raise" if dbutils.widgets.get("fail_job") == "yes" else ""  # noqa: F821
else:
    KEY = ""  # AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_API_KEY come from the environment
    RESULTS = "spark_catalog.bias_suite"
    RAISE = ""
os.environ.setdefault("AZURE_OPENAI_API_VERSION", "2024-06-01")

# COMMAND ----------

# Databricks notebooks have `spark`; in local Jupyter, start one (pip install "pytest-llmbias[spark]").
if not ON_DATABRICKS:
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[2]")
             .config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", "2")  # a laptop's data: few partitions
             .config("spark.sql.repl.eagerEval.enabled", "true")  # Jupyter shows DataFrames as tables
             .getOrCreate())
spark.sql(f"CREATE SCHEMA IF NOT EXISTS {RESULTS}")

# COMMAND ----------

# MAGIC %load_ext pytest_llmbias

# COMMAND ----------

# MAGIC %md
# MAGIC ## Run the suite against the deployment
# MAGIC `%pytest` takes pytest's command line. When the run ends, its verdicts and then its answers are displayed
# MAGIC as Spark DataFrames on this notebook's `spark`, and appended to the tables `<RESULTS>.llmbias_verdicts`
# MAGIC and `<RESULTS>.llmbias_answers`. (In a Python cell, `results = %pytest ...` keeps them as `results.verdicts`
# MAGIC and `results.answers`.)

# COMMAND ----------

# MAGIC %pytest --llm-live {KEY} {RAISE} --llm-results {RESULTS} ../cases/

# COMMAND ----------

# MAGIC %md
# MAGIC ## Every run so far, from the results table

# COMMAND ----------

history = spark.sql(f"""
    SELECT run_id, run_time, model, git_commit,
           count_if(outcome = 'failed') AS failed,
           count_if(outcome = 'inconclusive') AS inconclusive,
           count(*) AS checks
    FROM {RESULTS}.llmbias_verdicts
    GROUP BY run_id, run_time, model, git_commit
    ORDER BY run_time DESC
""")
display(history)  # noqa: F821

# COMMAND ----------

# The failed checks, run after run, with their figures and thresholds.
display(spark.sql(f"""
    SELECT v.run_time, v.case_id, v.check, v.figure, v.threshold, v.summary
    FROM {RESULTS}.llmbias_verdicts v
    WHERE v.outcome = 'failed'
    ORDER BY v.run_time DESC, v.case_id
"""))  # noqa: F821
