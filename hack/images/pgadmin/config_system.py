# pgAdmin settings for this image (pgAdmin reads /etc/pgadmin/config_system.py last).
SERVER_MODE = True
DATA_DIR = "/var/lib/pgadmin"
UPGRADE_CHECK_ENABLED = False  # no internet to check against
