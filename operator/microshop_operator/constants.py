"""Names, labels, images and ports shared by the Shop schema, the builders and the handlers."""

from typing import Final

# --- the Shop resource -------------------------------------------------------------------------
GROUP: Final = "microshop.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "Shop"
PLURAL: Final = "shops"

# Child names append at most "-notifications-db" (17 characters) to the Shop's name; a
# StatefulSet's name plus the 11-character revision hash suffix must stay a 63-character label.
MAX_SHOP_NAME_LENGTH: Final = 30

# --- labels on every child (Kubernetes recommended labels) --------------------------------------
LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_VERSION: Final = "app.kubernetes.io/version"
PART_OF: Final = "microshop"
MANAGED_BY: Final = "microshop-operator"

# Values of app.kubernetes.io/component.
COMPONENT_GATEWAY: Final = "gateway"
COMPONENT_SERVICE: Final = "service"
COMPONENT_DATABASE: Final = "database"
COMPONENT_BUS: Final = "bus"
COMPONENT_SECRET: Final = "credentials"
COMPONENT_NETWORK: Final = "network-policy"

# A pod-template annotation holding a digest of the configuration a pod reads only at start
# (the gateway's routes through envFrom, the bus's mounted rabbitmq.conf), so that a change to
# that ConfigMap rolls the Deployment or restarts the StatefulSet's pod.
ANNOTATION_CONFIG_DIGEST: Final = "microshop.dev/config-digest"

# --- the services -------------------------------------------------------------------------------
GATEWAY: Final = "gateway"
USERS: Final = "users"
ORDERS: Final = "orders"
PAYMENTS: Final = "payments"
NOTIFICATIONS: Final = "notifications"
# Backends first, the gateway last: the order children are built and listed in.
BACKEND_SERVICES: Final = (USERS, ORDERS, PAYMENTS, NOTIFICATIONS)
SERVICES: Final = (*BACKEND_SERVICES, GATEWAY)
# Every backend owns one database; these services also talk to the bus.
DATABASE_SERVICES: Final = BACKEND_SERVICES
BUS_SERVICES: Final = (ORDERS, PAYMENTS, NOTIFICATIONS)

SERVICE_PORT: Final = 8080
SERVICE_PORT_NAME: Final = "http"
# Every service serves /metrics on a port of its own (MICROSHOP_METRICS_PORT), never the public one.
METRICS_PORT: Final = 9090
METRICS_PORT_NAME: Final = "metrics"
SERVICE_IMAGE_REPOSITORY: Final = "microshop-services"
DEFAULT_REGISTRY: Final = "ghcr.io/microshop"
DEFAULT_VERSION: Final = "0.1.0"
# The uid/gid the service image's non-root user has (see the service Dockerfile).
SERVICE_UID: Final = 10001

# --- databases and the bus (pinned images: an operator release decides their versions) ------
POSTGRES: Final = "postgresql"
MONGODB: Final = "mongodb"
DATABASE_ENGINES: Final = {
    USERS: POSTGRES,
    ORDERS: MONGODB,
    PAYMENTS: POSTGRES,
    NOTIFICATIONS: POSTGRES,
}
POSTGRES_IMAGE: Final = "docker.io/library/postgres:17.6"
POSTGRES_PORT: Final = 5432
POSTGRES_UID: Final = 999  # the image's "postgres" user
MONGODB_IMAGE: Final = "docker.io/library/mongo:8.0.13"
MONGODB_PORT: Final = 27017
MONGODB_UID: Final = 999  # the image's "mongodb" user
RABBITMQ_IMAGE: Final = "docker.io/library/rabbitmq:4.1.4-management"
RABBITMQ_AMQP_PORT: Final = 5672
RABBITMQ_MANAGEMENT_PORT: Final = 15672
RABBITMQ_UID: Final = 999  # the image's "rabbitmq" user

# Keys inside the generated Secrets.
SECRET_KEY_USERNAME: Final = "username"
SECRET_KEY_PASSWORD: Final = "password"
SECRET_KEY_URL: Final = "url"
SECRET_KEY_JWT_PRIVATE: Final = "private-key.pem"
SECRET_KEY_JWT_PUBLIC: Final = "public-key.pem"
