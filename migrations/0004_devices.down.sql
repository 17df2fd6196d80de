DROP TABLE account.devices;
