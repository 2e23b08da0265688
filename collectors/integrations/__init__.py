"""Provider integrations: instrument an SDK client so its model calls are traced without hand-written `model_call`s.

One module per provider, imported by the user only (`from tokentrail.collectors.integrations.openai
import instrument_openai`), so `import tokentrail.collectors` never imports a provider SDK and a
service without that SDK installed is unaffected.
"""
