"""Lab hosts: the node image, the docker engine probe and the Vagrant driver."""
