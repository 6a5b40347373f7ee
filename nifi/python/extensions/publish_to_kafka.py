"""PublishToKafka: a NiFi 2 Python processor that sends each FlowFile's content as one Kafka message.

NiFi's own Kafka NARs (nifi-kafka-nar, nifi-kafka-3-service-nar) are not served by the package
registry this project can reach, so the edge publishes through librdkafka (confluent-kafka) from a
Python processor instead. NiFi installs the declared dependency into the processor's own environment.
"""

from nifiapi.flowfiletransform import FlowFileTransform, FlowFileTransformResult
from nifiapi.properties import (
    ExpressionLanguageScope,
    PropertyDescriptor,
    StandardValidators,
)


class PublishToKafka(FlowFileTransform):
    class Java:
        implements = ["org.apache.nifi.python.processor.FlowFileTransform"]

    class ProcessorDetails:
        version = "0.1.0"
        description = (
            "Publishes the content of each FlowFile as one Kafka message (librdkafka via confluent-kafka, "
            "SASL/SCRAM over TLS) and "
            "waits for the broker's acknowledgement; FlowFiles the broker did not acknowledge go to failure."
        )
        tags = ["kafka", "publish", "radlake"]
        dependencies = ["confluent-kafka>=2.6,<3"]

    BOOTSTRAP_SERVERS = PropertyDescriptor(
        name="Kafka Brokers",
        description="Comma-separated host:port list of the Kafka bootstrap servers.",
        required=True,
        validators=[StandardValidators.NON_EMPTY_VALIDATOR],
        expression_language_scope=ExpressionLanguageScope.ENVIRONMENT,
    )
    TOPIC = PropertyDescriptor(
        name="Topic Name",
        description="The Kafka topic to publish to.",
        required=True,
        validators=[StandardValidators.NON_EMPTY_VALIDATOR],
        expression_language_scope=ExpressionLanguageScope.FLOWFILE_ATTRIBUTES,
    )
    MESSAGE_KEY = PropertyDescriptor(
        name="Kafka Key",
        description="The message key; empty means no key.",
        required=False,
        expression_language_scope=ExpressionLanguageScope.FLOWFILE_ATTRIBUTES,
    )
    USERNAME = PropertyDescriptor(
        name="Kafka Username",
        description="The Kafka principal this processor publishes as (SASL/SCRAM-SHA-512 over TLS).",
        required=True,
        validators=[StandardValidators.NON_EMPTY_VALIDATOR],
    )
    PASSWORD = PropertyDescriptor(
        name="Kafka Password",
        description="The principal's password.",
        required=True,
        sensitive=True,
        validators=[StandardValidators.NON_EMPTY_VALIDATOR],
    )
    CA_FILE = PropertyDescriptor(
        name="Kafka CA File",
        description="PEM file of the CA that signed the broker's certificate (the platform CA).",
        required=True,
        validators=[StandardValidators.NON_EMPTY_VALIDATOR],
    )
    DELIVERY_TIMEOUT_MS = PropertyDescriptor(
        name="Delivery Timeout (ms)",
        description="How long to wait for the broker's acknowledgement before routing to failure.",
        required=True,
        default_value="30000",
        validators=[StandardValidators.POSITIVE_INTEGER_VALIDATOR],
    )

    def __init__(self, **kwargs):
        super().__init__()
        self.producer = None
        self.delivery_timeout_s = 30.0

    def getPropertyDescriptors(self):
        return [self.BOOTSTRAP_SERVERS, self.USERNAME, self.PASSWORD, self.CA_FILE, self.TOPIC, self.MESSAGE_KEY,
                self.DELIVERY_TIMEOUT_MS]

    def onScheduled(self, context):
        from confluent_kafka import Producer

        timeout_ms = context.getProperty(self.DELIVERY_TIMEOUT_MS).asInteger()
        self.delivery_timeout_s = timeout_ms / 1000.0
        self.producer = Producer({
            "bootstrap.servers": context.getProperty(self.BOOTSTRAP_SERVERS).evaluateAttributeExpressions().getValue(),
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": context.getProperty(self.USERNAME).getValue(),
            "sasl.password": context.getProperty(self.PASSWORD).getValue(),
            "ssl.ca.location": context.getProperty(self.CA_FILE).getValue(),
            "acks": "all",
            "enable.idempotence": True,
            "delivery.timeout.ms": timeout_ms,
            "client.id": f"nifi-{self.identifier}",
        })

    def onStopped(self, context):
        if self.producer is not None:
            self.producer.flush(self.delivery_timeout_s)
            self.producer = None

    def transform(self, context, flowfile):
        topic = context.getProperty(self.TOPIC).evaluateAttributeExpressions(flowfile).getValue()
        key = context.getProperty(self.MESSAGE_KEY).evaluateAttributeExpressions(flowfile).getValue()
        outcome = {}

        def delivered(err, msg):
            outcome["error"] = err
            if msg is not None and err is None:
                outcome["partition"], outcome["offset"] = msg.partition(), msg.offset()

        self.producer.produce(topic, value=flowfile.getContentsAsBytes(), key=key or None, on_delivery=delivered)
        self.producer.flush(self.delivery_timeout_s)
        if outcome.get("error") is not None or "offset" not in outcome:
            reason = outcome.get("error", "no acknowledgement within the delivery timeout")
            self.logger.error(f"publishing to {topic} failed: {reason}")
            return FlowFileTransformResult("failure", attributes={"kafka.error": str(reason)})
        return FlowFileTransformResult("success", attributes={
            "kafka.topic": topic,
            "kafka.partition": str(outcome["partition"]),
            "kafka.offset": str(outcome["offset"]),
        })
